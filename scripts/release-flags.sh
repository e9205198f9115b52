# Sourced by scripts/build-host-release.sh and guest-agent/build-image.sh: the swift build flags of
# every release binary we ship (the shim, its helpers and the guest agent), in the array
# `release_flags`. One set for all, so that building one after the other reuses the build instead of
# recompiling it with other flags. What they do:
#   - the Swift runtime linked in (-static-stdlib);
#   - libstdc++ linked statically: only the parts the runtime uses, instead of the whole shared
#     library mapped into every process and, in the guest, its ≈ 5 000 symbol relocations resolved
#     at every boot (the runtime's `-lstdc++` finds the archive first through -L);
#   - GNU ld with packed relative relocations (-z pack-relative-relocs, glibc >= 2.36): the PIE's
#     ≈ 55 000 relocations take 10 KiB instead of 1.3 MiB that the loader reads at every start;
#   - no dynamic symbol table for the whole program (Swift's static runtime exports every symbol
#     by default; nothing dlsym()s into these binaries);
#   - full RELRO (-z relro -z now, and scripts/writable-rodata.ld): Swift emits some constant
#     tables as *writable* .rodata input sections; GNU ld merged them into a writable .rodata and
#     then left out the GNU_RELRO segment, so .rodata, Swift's metadata, the GOT and .data.rel.ro
#     stayed writable for the life of the shim (root, and the host end of every guest channel) and
#     of the agent. The script moves those inputs to a data section of their own: .rodata is
#     read-only again, and the GOT and .data.rel.ro become read-only once the loader has relocated
#     them; every symbol is bound at start (a few libc/libseccomp ones).
archive=$(clang -print-file-name=libstdc++.a 2>/dev/null || gcc -print-file-name=libstdc++.a)
if [[ "$archive" != /* || ! -f "$archive" ]]; then
    echo "release-flags: libstdc++.a not found (apt-get install libstdc++-12-dev)" >&2
    exit 1
fi
static_dir=$PWD/.build/static-libstdcxx
mkdir -p "$static_dir"
ln -sfn "$archive" "$static_dir/libstdc++.a"
release_flags=(-c release -Xswiftc -static-stdlib -Xswiftc -L -Xswiftc "$static_dir" -Xswiftc -use-ld=bfd
    -Xlinker -z -Xlinker pack-relative-relocs -Xlinker --no-export-dynamic
    -Xlinker -z -Xlinker relro -Xlinker -z -Xlinker now -Xlinker -T -Xlinker "$PWD/scripts/writable-rodata.ld")

# Fails when `binary` still needs libstdc++ from a shared library, lacks full RELRO or has a
# writable .rodata.
require_release_link() {
    if readelf -d "$1" | grep -q 'NEEDED.*libstdc++'; then
        echo "release-flags: $1 still links libstdc++ dynamically" >&2
        exit 1
    fi
    if ! readelf -lW "$1" | grep -q GNU_RELRO || ! readelf -d "$1" | grep -q -E 'BIND_NOW|FLAGS_1.*NOW'; then
        echo "release-flags: $1 is not linked with full RELRO (-z relro -z now)" >&2
        exit 1
    fi
    if readelf -SW "$1" | grep -E ' \.rodata +PROGBITS' | grep -q -E ' [A-Z]*W[A-Z]* '; then
        echo "release-flags: $1 has a writable .rodata (scripts/writable-rodata.ld not applied)" >&2
        exit 1
    fi
}
