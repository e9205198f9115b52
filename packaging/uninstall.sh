#!/usr/bin/env bash
# Removes exactly what install.sh added (see /var/lib/swiftkata/install-manifest): binaries, guest
# kernel and image, the configuration it wrote, and its block in /etc/containerd/config.toml; the
# warm pool's VMs go first.
# Debian packages it installed are removed only with --purge-packages.
set -euo pipefail
log() { printf '[swiftkata uninstall] %s\n' "$*"; }
manifest_dir=/var/lib/swiftkata
manifest=$manifest_dir/install-manifest
purge_packages=0
[[ ${1:-} == --purge-packages ]] && purge_packages=1
if [[ ! -e $manifest ]]; then
    log "nothing to remove (no $manifest)"
    exit 0
fi

# Warm-pool VMs belong to no pod, so no containerd delete ever destroys them: drain them while the
# shim and its libvirt helper are still installed.
if [[ -x /usr/local/bin/containerd-shim-swiftkata-v2 ]]; then
    /usr/local/bin/containerd-shim-swiftkata-v2 drain-pool | sed 's/^/[swiftkata uninstall] /' || log "draining the warm pool failed (virsh list shows swiftkata_pool-* domains)"
fi

# The read-only mounts of the guest kernel that shims made for libvirt (<state_dir>/guest/vmlinux-*).
state_dir=$(sed -n 's/^\s*state_dir\s*=\s*"\(.*\)".*/\1/p' /etc/swiftkata/configuration.toml 2>/dev/null | head -n1)
for mount_point in "${state_dir:-/run/swiftkata}"/guest/vmlinux-*; do
    [[ -e $mount_point ]] || continue
    umount -l "$mount_point" 2>/dev/null || true
    rm -f "$mount_point" && log "removed the guest kernel mount $mount_point"
done

restart_containerd=0
packages=()
directories=()
while read -r kind path; do
    case $kind in
        file)
            [[ $path == /etc/containerd/config.toml ]] && restart_containerd=1
            if [[ $path == *.service && -d /run/systemd/system ]]; then
                systemctl disable --now "$(basename "$path")" >/dev/null 2>&1 || true
            fi
            rm -f "$path" && log "removed $path" ;;
        directory) directories+=("$path") ;;
        containerd-block|containerd-merge)
            sed -i '/^# BEGIN swiftkata$/,/^# END swiftkata$/d' "$path"
            # A key the merge changed in place goes back; one it added goes.
            sed -i -E 's/^(\s*)restrict_oom_score_adj = true  # swiftkata: .*\(was false\)$/\1restrict_oom_score_adj = false/; /  # swiftkata: /d' "$path"
            log "removed what swiftkata added to $path"
            restart_containerd=1 ;;
        package) packages+=("$path") ;;
    esac
done < "$manifest"
for directory in "${directories[@]}"; do rmdir "$directory" 2>/dev/null && log "removed $directory" || true; done
rm -f "$manifest" "$manifest_dir/containerd-config.toml.orig"
rmdir "$manifest_dir" 2>/dev/null || true

if ((restart_containerd)); then
    if [[ -d /run/systemd/system ]]; then
        systemctl restart containerd
    elif pgrep -x containerd >/dev/null; then
        pkill -x containerd
        for _ in $(seq 100); do pgrep -x containerd >/dev/null || break; sleep 0.1; done
        mkdir -p /var/log/swiftkata
        nohup containerd >/var/log/swiftkata/containerd.log 2>&1 &
    fi
fi
if ((purge_packages)) && ((${#packages[@]})); then
    log "removing packages ${packages[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq "${packages[@]}" >/dev/null
elif ((${#packages[@]})); then
    log "kept the Debian packages install.sh added (${packages[*]}); remove them with --purge-packages"
fi
