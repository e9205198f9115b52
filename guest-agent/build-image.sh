#!/usr/bin/env bash
# Builds the guest image: the root file system whose /init is swiftkata-agent (release build, Swift
# stdlib linked statically, stripped) plus exactly the shared libraries it loads. Two forms of the
# same tree (fixed file order, owners and timestamps; the cpio is byte-for-byte reproducible, the ext4
# image has a fixed UUID and hash seed but e2fsprogs 1.47.0 stamps inode change times):
#
#   swiftkata-rootfs.img  a raw ext4 file system (no journal), the default: QEMU attaches it as a
#                         read-only virtio-blk disk and the kernel mounts it as the root. The guest
#                         reads only the pages it touches, so an idle pod holds ≈ 40 MiB less, and
#                         boots ≈ 180 ms sooner under TCG (no initramfs to load, unpack and move).
#   swiftkata-initrd.img  an uncompressed cpio initramfs, for hosts that prefer no block device
#                         (hypervisor.image may name either; the format is recognised from the file).
#                         Uncompressed: gunzipping it in a TCG guest cost ≈ 250 ms of boot.
#
# Both are cached outside the source tree under ${SWIFTKATA_CACHE:-/var/cache/swiftkata}/image/<key>/,
# where key = sha256(agent binary, this script, busybox); the 8 most recently used are kept. Prints the
# root file system's path as the last line.
#
# SWIFTKATA_AGENT_SCRATCH=<dir> builds the agent in that SwiftPM scratch path instead of .build.
# SWIFTKATA_AGENT_PRODUCT=swiftkata-hostile-agent builds the hostile-guest tests' image instead (a
# test-only agent that attacks the host; never installed).
#
# Usage: guest-agent/build-image.sh [--print-path]
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${SWIFTKATA_CACHE:-/var/cache/swiftkata}
log() { printf 'build-image: %s\n' "$*" >&2; }

cd "$root"
product=${SWIFTKATA_AGENT_PRODUCT:-swiftkata-agent}
log "building $product (release, linked as scripts/release-flags.sh says)"
scratch=()
if [[ -n "${SWIFTKATA_AGENT_SCRATCH:-}" ]]; then scratch=(--scratch-path "$SWIFTKATA_AGENT_SCRATCH"); fi
# The host's release flags: the Swift runtime and libstdc++ linked in, packed relocations. Less for
# the guest's loader to read and resolve on every boot (measured: exec of /init to the agent's
# main() 75 -> see the README's bench-boot line).
source scripts/release-flags.sh
swift build "${scratch[@]}" "${release_flags[@]}" --product "$product" >&2
agent=$(swift build "${scratch[@]}" "${release_flags[@]}" --product "$product" --show-bin-path)/$product
require_release_link "$agent"

# busybox (Debian's busybox-static) is the operator's debug console in the guest's own root
# (`swiftkata-ctl console`); containers never see that root.
busybox=$(command -v busybox || true)
if [[ -z "$busybox" || -n "$(readelf -l "$busybox" 2>/dev/null | sed -n 's/.*program interpreter.*/dynamic/p')" ]]; then
    log "busybox is missing or not static: apt-get install busybox-static"
    exit 1
fi
key=$(cat "$agent" "$0" scripts/release-flags.sh "$busybox" | sha256sum | cut -c1-16)
out="$cache/image/$key"
image="$out/swiftkata-rootfs.img"
initrd="$out/swiftkata-initrd.img"
if [[ "${1:-}" == "--print-path" ]]; then echo "$image"; exit 0; fi
# Every change to the agent makes a new key; without pruning a developer's cache grew by ≈ 50 MB per
# build (12 GB seen). The newest images by use stay (a hit marks its directory used); images already
# installed were copied to /usr/share/swiftkata and do not depend on this cache.
keep_images=8
prune_images() {
    local old
    while read -r old; do
        [[ -n "$old" && "$old" != "$out" ]] || continue
        rm -rf --one-file-system -- "$old"
    done < <(find "$cache/image" -mindepth 1 -maxdepth 1 -type d -printf '%T@ %p\n' 2>/dev/null |
        sort -rn | tail -n +$((keep_images + 1)) | cut -d' ' -f2-)
}
if [[ -f "$image" && -f "$initrd" ]]; then
    touch "$out"
    log "cached: $image"
    echo "$image"
    exit 0
fi

# The agent must not pull in full Foundation (ICU data would add ~30 MB to every pod's boot).
if ldd "$agent" | grep -qiE 'libFoundation|libicu' || nm "$agent" 2>/dev/null | grep -q 'icudt[0-9]*_dat'; then
    log "$product links Foundation/ICU; the guest agent must use FoundationEssentials or none"
    exit 1
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{dev,proc,sys,run,tmp,etc,sbin,bin} "$stage"/run/swiftkata
install -m 0755 "$agent" "$stage/init"
strip --strip-all "$stage/init"
ln -s ../init "$stage/sbin/init"
install -m 0755 "$busybox" "$stage/bin/busybox"
ln -s busybox "$stage/bin/sh"
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
# The root disk is read-only: the agent's resolv.conf lives in the /run tmpfs.
ln -s ../run/resolv.conf "$stage/etc/resolv.conf"
printf 'root:x:0:\ntty:x:5:\n' > "$stage/etc/group"

mkdir -p "$out"
find "$stage" -exec touch -h -d @0 {} +
(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --reproducible --owner=0:0 --quiet) \
    > "$initrd.tmp"
mv "$initrd.tmp" "$initrd"

# ext4 without a journal (never written), 4 KiB blocks, 10 % free space plus 2 MiB for metadata.
size_kib=$(( $(du -sk --apparent-size "$stage" | cut -f1) * 110 / 100 + 2048 ))
rm -f "$image.tmp"
mkfs.ext4 -q -F -d "$stage" -L swiftkata-root -b 4096 -N 128 -m 0 \
    -O ^has_journal,^resize_inode -U 6b6a6174-6100-4000-8000-000000000001 \
    -E root_owner=0:0,hash_seed=6b6a6174-6100-4000-8000-000000000002 "$image.tmp" "${size_kib}K" >&2
mv "$image.tmp" "$image"
printf '%s\n' "$(stat -c %s "$image")" > "$out/size"
touch "$out"
prune_images
log "root file system: $image ($(( $(stat -c %s "$image") / 1024 )) KiB; agent $(( $(stat -c %s "$stage/init") / 1024 )) KiB stripped)"
log "initramfs:        $initrd ($(( $(stat -c %s "$initrd") / 1024 )) KiB)"
echo "$image"
