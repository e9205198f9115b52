#!/usr/bin/env bash
# Gives /dev/kvm the ownership Debian's udev rule gives it (root:kvm 0660), where no udev ran (containers,
# CI runners, sandboxes): a fresh device node is root:root 0600, libvirt's QEMU user (in group kvm) cannot
# open it, and libvirt 9.0 then finds its cached QEMU capabilities invalid at every domain start and
# re-probes QEMU: about 10 s per pod under TCG. Also installs the udev rule that keeps the ownership
# where udev runs later. Idempotent; prints what it changed. With --record FILE, lists what it added
# there (install.sh's manifest) so that uninstall.sh can remove it.
set -euo pipefail
log() { printf '[swiftkata kvm] %s\n' "$*"; }
record_file=
[[ ${1:-} == --record ]] && record_file=${2:?--record needs a file}
record() { [[ -n $record_file ]] && { grep -qxF "$1" "$record_file" 2>/dev/null || echo "$1" >> "$record_file"; }; return 0; }

rule=/etc/udev/rules.d/65-swiftkata-kvm.rules
if ! grep -qsE 'KERNEL=="kvm".*GROUP="kvm"' /etc/udev/rules.d/*.rules /usr/lib/udev/rules.d/*.rules /lib/udev/rules.d/*.rules; then
    mkdir -p /etc/udev/rules.d
    echo 'KERNEL=="kvm", GROUP="kvm", MODE="0660"  # swiftkata: libvirt'"'"'s QEMU user opens /dev/kvm' > "$rule"
    record "file $rule"
    log "installed $rule"
fi

[[ -c /dev/kvm ]] || { log "no /dev/kvm: pods use TCG"; exit 0; }
getent group kvm >/dev/null || { log "WARNING: no group kvm (Debian's qemu-system-x86 creates it): /dev/kvm left as it is"; exit 0; }
if [[ $(stat -c %G /dev/kvm) != kvm ]] || (( (0$(stat -c %a /dev/kvm) & 060) != 060 )); then
    chgrp kvm /dev/kvm
    chmod g+rw /dev/kvm
    log "/dev/kvm is now $(stat -c '%U:%G %a' /dev/kvm) (was root-only: no udev rule had run)"
fi
