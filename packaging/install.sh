#!/usr/bin/env bash
# Installs swiftkata on a Debian 12 host: packages, release binaries, guest kernel and image,
# /etc/swiftkata/configuration.toml (never overwriting an edited one), the containerd runtime
# registration (merged into /etc/containerd/config.toml, never clobbering it), and running daemons.
# Idempotent. Everything it adds is listed in /var/lib/swiftkata/install-manifest for uninstall.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/opt/swift/usr/bin:$PATH
log() { printf '[swiftkata install] %s\n' "$*"; }

manifest_dir=/var/lib/swiftkata
manifest=$manifest_dir/install-manifest
mkdir -p "$manifest_dir"
touch "$manifest"
record() { grep -qxF "$1" "$manifest" || echo "$1" >> "$manifest"; }

# 1. Debian packages (those missing now are recorded: uninstall.sh --purge-packages removes them).
packages=(
    containerd runc libvirt-daemon-system libvirt-dev libvirt-clients qemu-system-x86 qemu-utils
    libseccomp-dev busybox-static linux-source-6.1 cpio e2fsprogs tini make binutils libstdc++-12-dev
    bc bison flex libelf-dev libssl-dev xz-utils
)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    for package in "${missing[@]}"; do record "package $package"; done
fi

# 2. Release binaries, guest kernel (cached by its inputs) and guest image.
log "building release binaries"
scripts/build-host-release.sh containerd-shim-swiftkata-v2 swiftkata-check swiftkata-vm >/dev/null
log "building the guest kernel and image (the kernel is cached under /var/cache/swiftkata)"
kernel_dir=$(dirname "$(guest-kernel-config/build.sh | tail -n1)")
image=$(guest-agent/build-image.sh | tail -n1)

install_file() {  # install_file MODE SOURCE DESTINATION
    install -D -m "$1" "$2" "$3"
    record "file $3"
}
install_file 0755 .build/release/containerd-shim-swiftkata-v2 /usr/local/bin/containerd-shim-swiftkata-v2
install_file 0755 .build/release/swiftkata-check /usr/local/bin/swiftkata-check
# The shim drives libvirt through this helper, found next to the shim.
install_file 0755 .build/release/swiftkata-vm /usr/local/bin/swiftkata-vm
install_file 0644 "$kernel_dir/vmlinux" /usr/share/swiftkata/vmlinux
install_file 0644 "$image" /usr/share/swiftkata/swiftkata-rootfs.img
record "directory /usr/share/swiftkata"
installed_config=/etc/swiftkata/configuration.toml
if [[ ! -e $installed_config ]]; then
    install_file 0644 packaging/configuration.toml "$installed_config"
    record "directory /etc/swiftkata"
elif ! cmp -s packaging/configuration.toml "$installed_config"; then
    if grep -qxF "$(sha256sum < "$installed_config" | cut -c1-64)" packaging/configuration.previous-defaults; then
        log "updating the unedited $installed_config to this version's defaults"
        install -m 0644 packaging/configuration.toml "$installed_config"
    else
        log "keeping the edited $installed_config (defaults: packaging/configuration.toml)"
    fi
fi

# /dev/kvm as Debian's udev rule leaves it, where no udev ran (see the script).
packaging/kvm-device.sh --record "$manifest"

# 3. containerd: runtime io.containerd.swiftkata.v2 as CRI handler kata-runtime.
containerd_config=/etc/containerd/config.toml
config_changed=0
if [[ ! -e $containerd_config ]]; then
    log "writing $containerd_config"
    mkdir -p /etc/containerd
    {
        echo "version = 2"
        echo
        echo "# swiftkata: this host has no CAP_SYS_RESOURCE for pause containers' oom_score_adj in some sandboxes."
        echo '[plugins."io.containerd.grpc.v1.cri"]'
        echo "  restrict_oom_score_adj = true"
        echo
        cat packaging/containerd-runtime.toml
    } > "$containerd_config"
    record "file $containerd_config"
    config_changed=1
elif grep -q 'runtimes.kata-runtime\]' "$containerd_config"; then
    log "$containerd_config already defines the kata-runtime handler; left as it is"
elif grep -Eq '^\s*version\s*=\s*2' "$containerd_config"; then
    log "adding the kata-runtime handler to $containerd_config"
    cp -n "$containerd_config" "$manifest_dir/containerd-config.toml.orig"
    [[ -z $(tail -c1 "$containerd_config") ]] || echo >> "$containerd_config"
    {
        echo "# BEGIN swiftkata"
        cat packaging/containerd-runtime.toml
        echo "# END swiftkata"
    } >> "$containerd_config"
    record "containerd-block $containerd_config"
    config_changed=1
else
    log "WARNING: $containerd_config is not a version 2 config: add packaging/containerd-runtime.toml by hand"
fi

# 4. Daemons: systemd units where systemd runs, started directly where it does not.
if [[ -d /run/systemd/system ]]; then
    systemctl enable --now virtlogd libvirtd containerd >/dev/null
    ((config_changed)) && systemctl restart containerd
else
    pgrep -x virtlogd >/dev/null || virtlogd -d
    if ! pgrep -x libvirtd >/dev/null; then
        mkdir -p /var/log/swiftkata
        # tini reaps the QEMU processes libvirtd daemonizes at once (PID 1 here may not).
        nohup tini -s -- libvirtd >/var/log/swiftkata/libvirtd.log 2>&1 &
    fi
    if ((config_changed)) && pgrep -x containerd >/dev/null; then
        log "restarting containerd"
        pkill -x containerd
        for _ in $(seq 100); do pgrep -x containerd >/dev/null || break; sleep 0.1; done
    fi
    if ! pgrep -x containerd >/dev/null; then
        mkdir -p /var/log/swiftkata
        nohup containerd >/var/log/swiftkata/containerd.log 2>&1 &
    fi
fi
for _ in $(seq 100); do
    [[ -S /run/containerd/containerd.sock && -S /var/run/libvirt/libvirt-sock ]] && break
    sleep 0.1
done

log "installed; host readiness:"
/usr/local/bin/swiftkata-check || true
