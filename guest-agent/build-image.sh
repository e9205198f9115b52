#!/usr/bin/env bash
# Builds the guest image: a cpio initrd whose /init is swiftkata-agent (release build, Swift stdlib
# linked statically, stripped) plus exactly the shared libraries it loads. Reproducible: fixed file
# order, owners and timestamps.
#
# Uncompressed on purpose: under TCG, gunzipping the ~26 MB image in the guest cost ~250 ms of
# boot (920 ms vs 666 ms to agent-ready, guest-agent/bench-boot.py); the guest keeps the unpacked
# files in RAM either way, and the compressed buffer would be freed just the same.
#
# The image is cached outside the source tree under ${SWIFTKATA_CACHE:-/var/cache/swiftkata}/image/<key>/,
# where key = sha256(agent binary, this script). Prints the image path as the last line.
#
# SWIFTKATA_AGENT_SCRATCH=<dir> builds the agent in that SwiftPM scratch path instead of .build.
#
# Usage: guest-agent/build-image.sh [--print-path]
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${SWIFTKATA_CACHE:-/var/cache/swiftkata}
log() { printf 'build-image: %s\n' "$*" >&2; }

cd "$root"
log "building swiftkata-agent (release, static Swift stdlib)"
scratch=()
if [[ -n "${SWIFTKATA_AGENT_SCRATCH:-}" ]]; then scratch=(--scratch-path "$SWIFTKATA_AGENT_SCRATCH"); fi
swift build "${scratch[@]}" -c release --product swiftkata-agent --static-swift-stdlib >&2
agent=$(swift build "${scratch[@]}" -c release --product swiftkata-agent --static-swift-stdlib --show-bin-path)/swiftkata-agent

key=$(cat "$agent" "$0" | sha256sum | cut -c1-16)
out="$cache/image/$key"
image="$out/swiftkata-initrd.img"
if [[ "${1:-}" == "--print-path" ]]; then echo "$image"; exit 0; fi
if [[ -f "$image" ]]; then
    log "cached: $image"
    echo "$image"
    exit 0
fi

# The agent must not pull in full Foundation (ICU data would add ~30 MB to every pod's boot).
if ldd "$agent" | grep -qiE 'libFoundation|libicu' || nm "$agent" 2>/dev/null | grep -q 'icudt[0-9]*_dat'; then
    log "swiftkata-agent links Foundation/ICU; the guest agent must use FoundationEssentials or none"
    exit 1
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{dev,proc,sys,run,tmp,etc,sbin} "$stage"/run/swiftkata
install -m 0755 "$agent" "$stage/init"
strip --strip-all "$stage/init"
ln -s ../init "$stage/sbin/init"
mknod -m 0600 "$stage/dev/console" c 5 1
mknod -m 0666 "$stage/dev/null" c 1 3

# Exactly the libraries the dynamic loader resolves for the agent (glibc, libstdc++, libgcc_s, ...).
while read -r lib; do
    [[ -n "$lib" ]] || continue
    mkdir -p "$stage$(dirname "$lib")"
    cp -L "$lib" "$stage$lib"
done < <(ldd "$agent" | awk '/=> \// { print $3 } /^\s*\/lib/ { print $1 }' | sort -u)
# Binaries look the loader up by its canonical path; keep /lib64 -> /lib/x86_64-linux-gnu style links working.
interp=$(readelf -l "$agent" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
if [[ -n "$interp" && ! -e "$stage$interp" ]]; then
    mkdir -p "$stage$(dirname "$interp")"
    cp -L "$interp" "$stage$interp"
fi
printf 'root:x:0:0:root:/:/init\n' > "$stage/etc/passwd"
printf 'root:x:0:\ntty:x:5:\n' > "$stage/etc/group"

mkdir -p "$out"
find "$stage" -exec touch -h -d @0 {} +
(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --reproducible --owner=0:0 --quiet) \
    > "$image.tmp"
mv "$image.tmp" "$image"
printf '%s\n' "$(stat -c %s "$image")" > "$out/size"
log "image: $image ($(( $(stat -c %s "$image") / 1024 )) KiB; agent $(( $(stat -c %s "$stage/init") / 1024 )) KiB stripped)"
echo "$image"
