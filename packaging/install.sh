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
    bc bison flex libelf-dev libssl-dev xz-utils iproute2 util-linux iptables
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
# One set of flags for every release binary (the anchor too), so that no build switches SwiftPM's
# configuration and recompiles what the previous one built.
scripts/build-host-release.sh containerd-shim-swiftkata-v2 swiftkata-check swiftkata-vm swiftkata-ctl swiftkata-anchor >/dev/null
log "building the guest kernel and image (the kernel is cached under /var/cache/swiftkata)"
kernel_dir=$(dirname "$(guest-kernel-config/build.sh | tail -n1)")
image=$(guest-agent/build-image.sh | tail -n1)

install_file() {  # install_file MODE SOURCE DESTINATION
    install -D -m "$1" "$2" "$3"
    record "file $3"
}
install_file 0755 .build/release/containerd-shim-swiftkata-v2 /usr/local/bin/containerd-shim-swiftkata-v2
install_file 0755 .build/release/swiftkata-check /usr/local/bin/swiftkata-check
# Operators' tool: metrics (serve-metrics), the debug console, the pod list; the metrics endpoint's
# unit is installed but not enabled.
install_file 0755 .build/release/swiftkata-ctl /usr/local/bin/swiftkata-ctl
install_file 0644 packaging/swiftkata-metrics.service /etc/systemd/system/swiftkata-metrics.service
[[ -d /run/systemd/system ]] && systemctl daemon-reload
# The shim drives libvirt through this helper, found next to the shim.
install_file 0755 .build/release/swiftkata-vm /usr/local/bin/swiftkata-vm
# Stands for each container that joins a pod (its task pid), found next to the shim.
install_file 0755 .build/release/swiftkata-anchor /usr/local/bin/swiftkata-anchor
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

# 3. containerd: runtime io.containerd.swiftkata.v2 as CRI handler kata-runtime, merged as TOML into
# whatever config is there (packaging/containerd-config.py): every runtime that worked before keeps
# working (runc is named when a runtimes table would otherwise replace containerd's built-in list).
containerd_config=/etc/containerd/config.toml
config_changed=0
config_existed=0
[[ -e $containerd_config ]] && config_existed=1
merge_flags=()
# Without CAP_SYS_RESOURCE (containers, some CI machines) CRI's pause containers fail to set their
# oom_score_adj unless restrict_oom_score_adj = true.
cap_effective=$(awk '/^CapEff:/ { print $2 }' /proc/self/status)
(( (16#$cap_effective >> 24) & 1 )) || merge_flags+=(--needs-restrict-oom-score-adj)
before=$(mktemp)
((config_existed)) && cp -p "$containerd_config" "$before"
if ! merged=$(/usr/bin/python3 packaging/containerd-config.py merge "$containerd_config" "${merge_flags[@]}"); then
    rm -f "$before"
    log "ERROR: $containerd_config was left unchanged; add packaging/containerd-runtime.toml by hand"
    exit 1
fi
if [[ $merged == changed ]]; then
    log "merged the kata-runtime handler into $containerd_config"
    config_changed=1
    if ((config_existed)); then
        cp -n "$before" "$manifest_dir/containerd-config.toml.orig"
        record "containerd-merge $containerd_config"
    else
        record "file $containerd_config"
    fi
else
    log "$containerd_config already runs kata-runtime with swiftkata; left as it is"
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

# A changed config must leave containerd's CRI plugin loaded (runc pods depend on it too): else the
# change is rolled back, containerd restarted on the old file, and the install fails saying why.
cri_plugin_status() { ctr plugins ls 2>/dev/null | awk '$1 == "io.containerd.grpc.v1" && $2 == "cri" { print $4 }'; }
if ((config_changed)); then
    for _ in $(seq 50); do [[ -n $(cri_plugin_status) ]] && break; sleep 0.1; done
    if [[ $(cri_plugin_status) != ok ]]; then
        log "ERROR: containerd's CRI plugin did not load with the merged $containerd_config ($(cri_plugin_status)); restoring it"
        if ((config_existed)); then cp -p "$before" "$containerd_config"; else rm -f "$containerd_config"; fi
        sed -i "\|^containerd-merge $containerd_config\$|d; \|^file $containerd_config\$|d" "$manifest"
        if [[ -d /run/systemd/system ]]; then systemctl restart containerd; else
            pkill -x containerd; for _ in $(seq 100); do pgrep -x containerd >/dev/null || break; sleep 0.1; done
            nohup containerd >/var/log/swiftkata/containerd.log 2>&1 &
        fi
        rm -f "$before"
        exit 1
    fi
    log "containerd's CRI plugin loaded with the merged config"
fi
rm -f "$before"

log "installed; host readiness:"
/usr/local/bin/swiftkata-check || true
