#!/usr/bin/env bash
# Build a tiny, reproducible OCI image archive from Debian's busybox-static,
# for shim integration tests (`ctr image import OUTPUT.tar`).
#
# Usage: make-busybox-image.sh OUTPUT.tar [REF [COMMAND...]]
#   REF defaults to docker.io/swiftkata/busybox:test.
#   COMMAND... becomes the image's default command (Cmd), `sh` when none is given; e.g.
#   `make-busybox-image.sh pause.tar docker.io/swiftkata/pause:test /bin/sleep 2147483647` builds the
#   pause (sandbox) image of the CRI tests.
# Same /bin/busybox (and arguments) in => byte-identical OUTPUT.tar out.
set -euo pipefail

die() { echo "make-busybox-image.sh: $*" >&2; exit 1; }

[ $# -ge 1 ] || die "usage: make-busybox-image.sh OUTPUT.tar [REF [COMMAND...]]"
out=$1
ref=${2:-docker.io/swiftkata/busybox:test}
shift $(($# >= 2 ? 2 : 1))
[ $# -ge 1 ] || set -- sh
# The command as a JSON array; arguments stay plain (no quotes, backslashes or control characters).
cmd=
for argument in "$@"; do
    case $argument in *[\"\\]* | *[[:cntrl:]]*) die "unsupported character in command argument: $argument" ;; esac
    cmd+=${cmd:+,}\"$argument\"
done
busybox=/bin/busybox

# The dynamic `busybox` package also ships /bin/busybox; only the static one
# runs inside an otherwise empty rootfs.
if ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed' \
    || [ ! -x "$busybox" ]; then
    die "busybox-static is not installed (apt-get install busybox-static)"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
umask 022

# Deterministic tar: fixed mtime/owner, sorted, no atime/ctime pax records.
rtar() {
    tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
        --format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
        "$@"
}
sha() { sha256sum "$1" | cut -d' ' -f1; }
size() { stat -c %s "$1"; }

# --- root filesystem --------------------------------------------------------
root=$work/rootfs
mkdir -p "$root"/{bin,etc,tmp,proc,sys,dev,root,var,run}
chmod 1777 "$root/tmp"
chmod 0700 "$root/root"
install -m 0755 "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
done
printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' \
    'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >"$root/etc/passwd"
printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' >"$root/etc/group"
chmod 0644 "$root/etc/passwd" "$root/etc/group"
# A hostile symlink pointing above the root: a mount destination through it must still land inside
# the container's root (path-escape tests).
ln -s ../../../../../.. "$root/escape-link"

# --- blobs ------------------------------------------------------------------
oci=$work/oci
mkdir -p "$oci/blobs/sha256"

# Layer: list top-level dirs explicitly so the tar has no "./" entry (whose
# mode would come from mktemp).
rtar -C "$root" -cf "$work/layer.tar" bin dev escape-link etc proc root run sys tmp var
diff_id=$(sha "$work/layer.tar")
gzip -n -9 <"$work/layer.tar" >"$work/layer.tar.gz"
layer=$(sha "$work/layer.tar.gz")
layer_size=$(size "$work/layer.tar.gz")
mv "$work/layer.tar.gz" "$oci/blobs/sha256/$layer"

printf '%s' '{"architecture":"amd64","os":"linux",'\
'"config":{"Env":["PATH=/bin:/usr/bin:/sbin:/usr/sbin"],"Cmd":['"$cmd"']},'\
'"rootfs":{"type":"layers","diff_ids":["sha256:'"$diff_id"'"]}}' >"$work/config.json"
config=$(sha "$work/config.json")
config_size=$(size "$work/config.json")
mv "$work/config.json" "$oci/blobs/sha256/$config"

printf '%s' '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'\
'"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:'"$config"'","size":'"$config_size"'},'\
'"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:'"$layer"'","size":'"$layer_size"'}]}' \
    >"$work/manifest.json"
manifest=$(sha "$work/manifest.json")
manifest_size=$(size "$work/manifest.json")
mv "$work/manifest.json" "$oci/blobs/sha256/$manifest"

# --- layout -----------------------------------------------------------------
# ctr import (containerd 1.6) names the image from io.containerd.image.name
# verbatim; failing that, from a full ref in org.opencontainers.image.ref.name
# (a bare tag there becomes "import-<date>:<tag>"). Set both to REF.
printf '%s' '{"imageLayoutVersion":"1.0.0"}' >"$oci/oci-layout"
printf '%s' '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",'\
'"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:'"$manifest"'","size":'"$manifest_size"','\
'"platform":{"architecture":"amd64","os":"linux"},'\
'"annotations":{"io.containerd.image.name":"'"$ref"'","org.opencontainers.image.ref.name":"'"$ref"'"}}]}' \
    >"$oci/index.json"

# Whole dirs are listed so blobs/ and blobs/sha256/ entries are included too.
rtar -C "$oci" -cf "$work/image.tar" blobs index.json oci-layout
mv "$work/image.tar" "$out"
