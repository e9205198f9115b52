#!/usr/bin/env bash
# Runs one container in a swiftkata VM through the host's containerd and prints the guest's kernel
# release next to the host's: they differ, because the container runs on its own kernel.
set -euo pipefail
cd "$(dirname "$0")/.."
namespace=swiftkata-demo
image=docker.io/swiftkata/busybox:test
if ! ctr -n "$namespace" image ls -q | grep -qxF "$image"; then
    tar=$(mktemp --suffix=.tar)
    trap 'rm -f "$tar"' EXIT
    scripts/make-busybox-image.sh "$tar" "$image"
    ctr -n "$namespace" image import "$tar" >/dev/null
fi
started=$(date +%s%N)
guest=$(ctr -n "$namespace" run --rm --runtime io.containerd.swiftkata.v2 "$image" "demo-$$" uname -r)
elapsed=$(( ($(date +%s%N) - started) / 1000000 ))
echo "host kernel:  $(uname -r)"
echo "guest kernel: $guest   (container in its own VM; ctr run --rm took ${elapsed} ms)"
