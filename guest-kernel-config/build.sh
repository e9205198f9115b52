#!/usr/bin/env bash
# Builds the swiftkata guest kernel from Debian's linux-source-6.1 package:
# tinyconfig + fragments/*.config (merged with `merge_config.sh -n`), all built
# in, no modules.
#
# Result (cached, outside the repository):
#   ${SWIFTKATA_CACHE:-/var/cache/swiftkata}/kernel/<key>/{bzImage,vmlinux,config,kernel-release,System.map}
# where <key> = sha256(fragment names + contents, this script, linux-source-6.1's version).
#
# Usage: build.sh [--force] [--print-path]
#   (no option)   build unless cached; the last line of stdout is the bzImage path
#   --print-path  print the cache directory that would be used, build nothing
#   --force       rebuild even if the cache entry exists
# Environment: SWIFTKATA_CACHE (cache root), JOBS (make -j, default nproc),
#              NICE (niceness of the build, default 19).
# Progress goes to stderr; stdout carries only the result path.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
self="$here/$(basename "${BASH_SOURCE[0]}")"
cache_root=${SWIFTKATA_CACHE:-/var/cache/swiftkata}
src_pkg=linux-source-6.1
tarball=/usr/src/linux-source-6.1.tar.xz
jobs=${JOBS:-$(nproc)}
niceness=${NICE:-19}
export ARCH=x86_64

log() { printf 'build.sh: %s\n' "$*" >&2; }
die() { printf 'build.sh: error: %s\n' "$*" >&2; exit 1; }

force=0 print_only=0
for arg in "$@"; do
	case "$arg" in
	--force) force=1 ;;
	--print-path) print_only=1 ;;
	-h|--help) sed -n '2,16p' "$self" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument: $arg (try --help)" ;;
	esac
done

pkg_version=$(dpkg-query -W -f='${Version}' "$src_pkg" 2>/dev/null) ||
	die "$src_pkg is not installed (apt-get install -y $src_pkg)"
[ -n "$pkg_version" ] || die "$src_pkg is not installed (apt-get install -y $src_pkg)"

mapfile -t fragments < <(find "$here/fragments" -maxdepth 1 -name '*.config' -type f | LC_ALL=C sort)
[ "${#fragments[@]}" -gt 0 ] || die "no fragments in $here/fragments"

key=$(
	{
		printf 'linux-source-6.1 %s\n' "$pkg_version"
		for f in "${fragments[@]}"; do
			printf '=== fragment %s\n' "$(basename "$f")"
			cat "$f"
		done
		printf '=== build.sh\n'
		cat "$self"
	} | sha256sum | cut -d' ' -f1
)
out_dir="$cache_root/kernel/$key"

if [ "$print_only" = 1 ]; then
	printf '%s\n' "$out_dir"
	exit 0
fi

if [ "$force" = 0 ] && [ -f "$out_dir/bzImage" ] && [ -f "$out_dir/kernel-release" ]; then
	log "cached: $(cat "$out_dir/kernel-release")"
	printf '%s\n' "$out_dir/bzImage"
	exit 0
fi

# ---- prerequisites ---------------------------------------------------------
[ -r "$tarball" ] || die "$tarball missing (apt-get install -y $src_pkg)"
missing=()
for tool in make gcc ld bc flex bison perl lz4 xz tar sha256sum flock; do
	command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[ -e /usr/include/libelf.h ] || missing+=("libelf-dev")
[ -e /usr/include/openssl/ssl.h ] || missing+=("libssl-dev")
if [ "${#missing[@]}" -gt 0 ]; then
	die "missing build tools: ${missing[*]} (apt-get install -y build-essential bc flex bison libelf-dev libssl-dev lz4 xz-utils util-linux)"
fi

mkdir -p "$cache_root/kernel" "$cache_root/kernel-src" "$cache_root/kernel-build"
exec 9>"$cache_root/kernel/.lock"
log "waiting for the kernel build lock ($cache_root/kernel/.lock)"
flock 9

# Another build may have produced it while we waited.
if [ "$force" = 0 ] && [ -f "$out_dir/bzImage" ] && [ -f "$out_dir/kernel-release" ]; then
	log "cached: $(cat "$out_dir/kernel-release")"
	printf '%s\n' "$out_dir/bzImage"
	exit 0
fi

# ---- source tree (kept, so that config changes rebuild incrementally) ------
src_parent="$cache_root/kernel-src/$pkg_version"
src="$src_parent/linux-source-6.1"
obj="$cache_root/kernel-build/$pkg_version"
if [ ! -f "$src_parent/.extracted" ]; then
	log "extracting $tarball into $src_parent"
	rm -rf "$src_parent"
	mkdir -p "$src_parent"
	nice -n "$niceness" tar -xJf "$tarball" -C "$src_parent"
	[ -f "$src/Makefile" ] || die "unexpected tarball layout: no $src/Makefile"
	touch "$src_parent/.extracted"
fi
mkdir -p "$obj"

kmake() { nice -n "$niceness" make -C "$src" O="$obj" ARCH=x86_64 "$@"; }

# ---- configuration ----------------------------------------------------------
log "configuring: tinyconfig + ${fragments[*]##*/}"
kmake -s tinyconfig >&2
(cd "$src" && nice -n "$niceness" scripts/kconfig/merge_config.sh -n -O "$obj" "$obj/.config" "${fragments[@]}") >"$obj/merge.log" 2>&1 ||
	{ cat "$obj/merge.log" >&2; die "merge_config.sh failed"; }

# Every option a fragment names must have survived with the requested value:
# Kconfig silently drops options whose dependencies are off.
lost=()
while IFS= read -r line; do
	case "$line" in
	CONFIG_*=*)
		name=${line%%=*}
		grep -qxF -- "$line" "$obj/.config" ||
			lost+=("$name: wanted '${line#*=}', got '$(grep -E "^(# )?$name[= ]" "$obj/.config" || echo 'absent')'")
		;;
	"# CONFIG_"*" is not set")
		name=${line#\# }; name=${name%% *}
		if grep -qE "^$name=" "$obj/.config"; then
			lost+=("$name: wanted off, got '$(grep -E "^$name=" "$obj/.config")'")
		fi
		;;
	esac
done < <(cat "${fragments[@]}")
if [ "${#lost[@]}" -gt 0 ]; then
	printf 'build.sh: error: %d required option(s) did not survive the merge:\n' "${#lost[@]}" >&2
	printf '  %s\n' "${lost[@]}" >&2
	printf 'build.sh: merge_config.sh said:\n' >&2
	grep -A3 -E '^(Value requested|warning)' "$obj/merge.log" >&2 || true
	exit 1
fi
log "configuration verified: every fragment option is in $obj/.config"

# ---- build ------------------------------------------------------------------
log "building bzImage (make -j$jobs, nice $niceness) in $obj"
start=$(date +%s)
kmake -j"$jobs" bzImage >&2
release=$(kmake -s kernelrelease)
log "built $release in $(( $(date +%s) - start )) s"

tmp_out="$cache_root/kernel/.tmp-$key-$$"
rm -rf "$tmp_out"
mkdir -p "$tmp_out"
trap 'rm -rf "$tmp_out"' EXIT
cp "$obj/arch/x86/boot/bzImage" "$tmp_out/bzImage"
# Uncompressed kernel with the PVH entry point (QEMU can boot it with -kernel).
objcopy --strip-all "$obj/vmlinux" "$tmp_out/vmlinux"
cp "$obj/.config" "$tmp_out/config"
cp "$obj/System.map" "$tmp_out/System.map"   # no KALLSYMS: decode guest oopses with this
printf '%s\n' "$release" >"$tmp_out/kernel-release"
rm -rf "$out_dir"
mv "$tmp_out" "$out_dir"
trap - EXIT

log "cached in $out_dir ($(stat -c %s "$out_dir/bzImage") bytes bzImage)"
printf '%s\n' "$out_dir/bzImage"
