#!/usr/bin/env bash
# Measures how long a guest kernel takes from QEMU exec to the first line of a
# busybox /init ("INIT-READY" on the serial console), over several runs, and
# prints the median in milliseconds as the last line of stdout.
#
# Usage: measure-boot.sh [options] KERNEL
#   KERNEL            bzImage (or the PVH vmlinux next to it)
#   -n N              runs (default 7)
#   -M MACHINE        QEMU -machine value (default: pc); e.g. microvm,rtc=off
#   -A ACCEL          QEMU accelerator (default: tcg)
#   -s N              vCPUs (default 1)
#   -m MIB            guest memory (default 256)
#   -c CMDLINE        the whole kernel command line (default below)
#   -a EXTRA          appended to the kernel command line
#   -q "ARGS"         extra QEMU arguments (word-split)
#   -i INITRD         use this initrd instead of the generated busybox one
#   --defaults        keep QEMU's default devices (-nographic; VGA, NIC, ...)
#                     instead of -nodefaults (libvirt always uses -nodefaults)
#   --agent-port      add virtio-serial-pci with port io.swiftkata.agent on a unix socket
#   --verify          boot once with virtio-serial, virtio-rng, virtio-net, virtio-blk
#                     (ext4), 9p and virtio-fs devices, check inside the guest that
#                     every feature the runtime needs is there, print the report
#                     and exit non-zero on any missing feature
#   --no-virtiofs     with --verify: leave out the virtio-fs device and its checks
#   -o FILE           save the serial console output of the last run in FILE
# Default command line (TCG):
#   pc, q35:  console=ttyS0 quiet noapictimer acpi=noirq random.trust_cpu=on panic=-1
#   microvm:  console=ttyS0 quiet random.trust_cpu=on panic=-1 tsc_early_khz=<host TSC kHz>
#             (microvm has no usable PIT/HPET clockevent, so no noapictimer; without
#             tsc_early_khz TSC calibration fails there and most boots hang)
# Per-run figures go to stderr; the median (ms) is the last line of stdout.
set -euo pipefail

runs=7 machine=pc accel=tcg smp=1 mem=256 extra_qemu="" initrd="" defaults=0
agent_port=0 verify=0 virtiofs=1 console_out=""
cmdline=""
append=""
usage() { sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'; }
die() { printf 'measure-boot.sh: error: %s\n' "$*" >&2; exit 2; }

args=()
while [ $# -gt 0 ]; do
	case "$1" in
	-n) runs=$2; shift 2 ;;
	-M) machine=$2; shift 2 ;;
	-A) accel=$2; shift 2 ;;
	-s) smp=$2; shift 2 ;;
	-m) mem=$2; shift 2 ;;
	-c) cmdline=$2; shift 2 ;;
	-a) append=$2; shift 2 ;;
	-q) extra_qemu=$2; shift 2 ;;
	-i) initrd=$2; shift 2 ;;
	-o) console_out=$2; shift 2 ;;
	--defaults) defaults=1; shift ;;
	--agent-port) agent_port=1; shift ;;
	--verify) verify=1; shift ;;
	--no-virtiofs) virtiofs=0; shift ;;
	-h|--help) usage; exit 0 ;;
	-*) die "unknown option $1 (try --help)" ;;
	*) args+=("$1"); shift ;;
	esac
done
[ "${#args[@]}" -eq 1 ] || { usage >&2; exit 2; }
kernel=$(readlink -f "${args[0]}")
[ -r "$kernel" ] || die "no kernel at ${args[0]}"
if [ -z "$cmdline" ]; then
	case "$machine" in
	microvm*)
		tsc_khz=$(awk -F: '/^cpu MHz/ { printf "%d", $2 * 1000; exit }' /proc/cpuinfo)
		[ -n "$tsc_khz" ] || die "cannot read the host TSC frequency from /proc/cpuinfo; pass -c"
		cmdline="console=ttyS0 quiet random.trust_cpu=on panic=-1 tsc_early_khz=$tsc_khz" ;;
	*)
		cmdline="console=ttyS0 quiet noapictimer acpi=noirq random.trust_cpu=on panic=-1" ;;
	esac
fi
[ -n "$append" ] && cmdline="$cmdline $append"
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 not installed"
python=/usr/bin/python3
[ -x "$python" ] || python=$(command -v python3) || die "python3 not installed"

work=$(mktemp -d /tmp/swiftkata-measure.XXXXXX)
vfsd_pid=""
cleanup() {
	if [ -n "$vfsd_pid" ]; then kill "$vfsd_pid" 2>/dev/null || true; wait "$vfsd_pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

# ---- busybox initramfs --------------------------------------------------------
make_initrd() { # $1 = /init script file, $2 = output cpio.gz
	local root="$work/root.$$.$RANDOM" bb
	bb=$(command -v busybox) || die "busybox (busybox-static) not installed"
	file -L "$bb" 2>/dev/null | grep -q 'statically linked' || [ ! -x /usr/bin/file ] ||
		die "$bb is not statically linked (apt-get install busybox-static)"
	mkdir -p "$root"/{bin,dev,proc,sys,mnt,tmp}
	cp "$bb" "$root/bin/busybox"
	for applet in $("$bb" --list); do
		[ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
	done
	install -m 0755 "$1" "$root/init"
	# /dev/console must exist in the initramfs or /init has no stdout.
	if ! mknod -m 600 "$root/dev/console" c 5 1 2>/dev/null; then
		die "cannot mknod /dev/console (run as root)"
	fi
	(cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet) | gzip -6 >"$2"
	rm -rf "$root"
}

cat >"$work/init-boot" <<'EOF'
#!/bin/sh
echo INIT-READY
exec /bin/poweroff -f
EOF

cat >"$work/init-verify" <<'EOF'
#!/bin/sh
export PATH=/bin
echo INIT-READY
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "UNAME $(uname -r)"
echo "FILESYSTEMS $(awk '{print $NF}' /proc/filesystems | tr '\n' ' ')"
echo "NS $(ls /proc/self/ns | tr '\n' ' ')"
mkdir -p /sys/fs/cgroup
if mount -t cgroup2 cgroup2 /sys/fs/cgroup; then
	echo "CGROUP2 $(cat /sys/fs/cgroup/cgroup.controllers)"
	for c in $(cat /sys/fs/cgroup/cgroup.controllers); do echo "+$c" > /sys/fs/cgroup/cgroup.subtree_control; done
	mkdir /sys/fs/cgroup/t
	echo "CGFILES $(cd /sys/fs/cgroup/t && ls | tr '\n' ' ')"
	echo $$ > /sys/fs/cgroup/t/cgroup.procs && echo "CGMOVE ok"
	echo $$ > /sys/fs/cgroup/cgroup.procs
fi
echo "SECCOMP $(grep '^Seccomp:' /proc/self/status)"
for p in /sys/class/virtio-ports/*; do [ -e "$p/name" ] && echo "VPORT $(basename "$p") $(cat "$p/name") $(ls /dev/$(basename "$p") 2>&1)"; done
echo "HWRNG $(cat /sys/class/misc/hw_random/rng_current 2>&1)"
echo "NET $(ls /sys/class/net | tr '\n' ' ')"
echo "BLOCK $(ls /sys/block | tr '\n' ' ')"
echo "VDRIVERS $(ls /sys/bus/virtio/drivers | tr '\n' ' ')"
echo "PTMX $(ls /dev/ptmx 2>&1)"
mkdir -p /mnt/9p /mnt/vfs /mnt/ext4 /mnt/t /mnt/ov
mount -t 9p -o trans=virtio,version=9p2000.L share9p /mnt/9p && echo "MNT9P $(cat /mnt/9p/hello)"
mount -t virtiofs vfs /mnt/vfs && echo "MNTVIRTIOFS $(cat /mnt/vfs/hello)"
mount -t ext4 /dev/vda /mnt/ext4 && echo "MNTEXT4 $(cat /mnt/ext4/hello)"
mount -t tmpfs -o size=8m tmpfs /mnt/t && mkdir /mnt/t/u /mnt/t/w &&
	mount -t overlay -o lowerdir=/mnt/9p,upperdir=/mnt/t/u,workdir=/mnt/t/w overlay /mnt/ov &&
	echo changed > /mnt/ov/hello && echo "MNTOVERLAY $(cat /mnt/ov/hello) $(cat /mnt/9p/hello)"
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts && echo "MNTDEVPTS ok"
unshare -m -u -i -n -p -f -r sh -c 'hostname inner && echo "UNSHARE $(hostname) $(id -u) $$"'
ip link set lo up && ip link set eth0 up && echo "NETUP ok"
echo "ENTROPY $(cat /proc/sys/kernel/random/entropy_avail)"
dmesg | grep -E 'crng init|PF_VSOCK|virtio_rng|Run /init' | sed 's/^/DMESG /'
echo VERIFY-DONE
exec /bin/poweroff -f
EOF

# ---- QEMU command line --------------------------------------------------------
qemu=(qemu-system-x86_64 -machine "$machine" -accel "$accel" -cpu max -smp "$smp" -m "$mem" -no-reboot)
if [ "$defaults" = 1 ]; then
	qemu+=(-nographic)
else
	qemu+=(-nodefaults -no-user-config -display none -serial stdio)
fi
qemu+=(-kernel "$kernel")

mmio=0
case "$machine" in microvm*) mmio=1 ;; esac
# microvm's virtio-mmio transports default to legacy virtio, which vhost-user
# (virtiofsd) refuses: ask for modern (virtio 1.0) transports.
[ "$mmio" = 1 ] && qemu+=(-global virtio-mmio.force-legacy=false)
dev() { # virtio device name for this machine type: $1 = base name (e.g. virtio-serial)
	if [ "$mmio" = 1 ]; then printf '%s-device' "$1"; else printf '%s-pci' "$1"; fi
}

if [ "$agent_port" = 1 ] || [ "$verify" = 1 ]; then
	qemu+=(-device "$(dev virtio-serial)"
		-chardev "socket,id=agent,path=$work/agent.sock,server=on,wait=off"
		-device virtserialport,chardev=agent,name=io.swiftkata.agent)
fi

if [ "$verify" = 1 ]; then
	mkdir -p "$work/share9p" "$work/sharevfs" "$work/ext4"
	echo "hello-9p" >"$work/share9p/hello"
	echo "hello-virtiofs" >"$work/sharevfs/hello"
	echo "hello-ext4" >"$work/ext4/hello"
	command -v mkfs.ext4 >/dev/null || die "mkfs.ext4 (e2fsprogs) not installed"
	truncate -s 16M "$work/disk.img"
	mkfs.ext4 -q -F -d "$work/ext4" "$work/disk.img"
	if [ "$virtiofs" = 1 ]; then
		[ -x /usr/lib/qemu/virtiofsd ] || die "/usr/lib/qemu/virtiofsd missing (qemu-system-x86)"
		/usr/lib/qemu/virtiofsd --socket-path="$work/vfs.sock" -o source="$work/sharevfs" -o cache=none \
			>"$work/virtiofsd.log" 2>&1 &
		vfsd_pid=$!
		for _ in $(seq 50); do [ -S "$work/vfs.sock" ] && break; sleep 0.1; done
		[ -S "$work/vfs.sock" ] || { cat "$work/virtiofsd.log" >&2; die "virtiofsd did not start"; }
		# virtio-fs needs all guest RAM in shared memory
		qemu[2]="$machine,memory-backend=mem"
		qemu+=(-object "memory-backend-memfd,id=mem,size=${mem}M,share=on"
			-chardev "socket,id=vfs,path=$work/vfs.sock"
			-device "$(dev vhost-user-fs),chardev=vfs,tag=vfs")
	fi
	qemu+=(
		-fsdev "local,id=fs9p,path=$work/share9p,security_model=none"
		-device "$(dev virtio-9p),fsdev=fs9p,mount_tag=share9p"
		-object rng-random,id=rng0,filename=/dev/urandom -device "$(dev virtio-rng),rng=rng0"
		-netdev user,id=net0 -device "$(dev virtio-net),netdev=net0"
		-drive "if=none,id=disk0,format=raw,file=$work/disk.img" -device "$(dev virtio-blk),drive=disk0")
	make_initrd "$work/init-verify" "$work/initrd.gz"
	runs=1
elif [ -z "$initrd" ]; then
	make_initrd "$work/init-boot" "$work/initrd.gz"
fi
[ -n "$initrd" ] || initrd="$work/initrd.gz"
qemu+=(-initrd "$initrd" -append "$cmdline")
# shellcheck disable=SC2206
[ -n "$extra_qemu" ] && qemu+=($extra_qemu)

printf 'measure-boot.sh: %s\n' "${qemu[*]}" >&2

# ---- run and time ---------------------------------------------------------------
rc=0
"$python" - "$runs" "$verify" "$virtiofs" "$work/console.log" "${qemu[@]}" <<'PY' || rc=$?
import os, subprocess, sys, time, select, statistics

runs, verify, virtiofs, logpath = int(sys.argv[1]), sys.argv[2] == "1", sys.argv[3] == "1", sys.argv[4]
cmd = sys.argv[5:]
marker, done_marker = b"INIT-READY", b"VERIFY-DONE"
timeout = 120.0 if verify else 30.0

def one_run():
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    buf, t_marker = b"", None
    fd = p.stdout.fileno()
    while True:
        left = timeout - (time.monotonic() - t0)
        if left <= 0:
            p.kill(); p.wait()
            return None, None, buf, "timeout"
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buf += chunk
        if t_marker is None and marker in buf:
            t_marker = time.monotonic()
    p.wait()
    t_exit = time.monotonic()
    if t_marker is None:
        return None, None, buf, "no marker (rc %d)" % p.returncode
    return (t_marker - t0) * 1000, (t_exit - t0) * 1000, buf, None

ok, exits, failures = [], [], 0
for i in range(runs):
    ms, exit_ms, out, err = one_run()
    if err:
        open(logpath, "wb").write(out)
        failures += 1
        sys.stderr.write("run %d: FAILED: %s\n--- console tail ---\n%s\n---\n"
                         % (i + 1, err, out[-2000:].decode(errors="replace")))
        continue
    open(logpath, "wb").write(out)
    ok.append(ms); exits.append(exit_ms)
    sys.stderr.write("run %d: init %.0f ms, qemu exited %.0f ms\n" % (i + 1, ms, exit_ms))
    if verify:
        text = out.decode(errors="replace").replace("\r", "")
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        lines = {}
        for line in text.splitlines():
            k, _, v = line.partition(" ")
            lines.setdefault(k, []).append(v)
        def has(key, *words):
            # whole-token match; "~word" matches a substring
            if key not in lines:
                return ["<no %s line>" % key]
            v = " ".join(lines[key])
            return [w for w in words
                    if not (w[1:] in v if w.startswith("~") else w in v.split())]
        checks = {
            "FILESYSTEMS": ["9p", "virtiofs", "overlay", "tmpfs", "devtmpfs", "ext4", "cgroup2",
                            "proc", "sysfs", "fuse", "devpts", "mqueue"],
            "NS": ["mnt", "pid", "uts", "ipc", "net", "user", "cgroup"],
            "CGROUP2": ["cpuset", "cpu", "io", "memory", "pids"],
            "CGFILES": ["memory.events", "memory.max", "cpu.max", "cpu.weight", "pids.max",
                        "cgroup.freeze", "cpuset.cpus", "memory.pressure"],
            "CGMOVE": ["ok"],
            "SECCOMP": ["Seccomp:"],
            "VPORT": ["io.swiftkata.agent"],
            "HWRNG": ["virtio_rng.0"],
            "NET": ["eth0", "lo"],
            "BLOCK": ["vda"],
            "VDRIVERS": ["virtio_console", "virtio_net", "virtio_blk", "virtio_rng",
                         "virtio_balloon", "virtiofs", "9pnet_virtio", "vmw_vsock_virtio_transport"],
            "PTMX": ["/dev/ptmx"],
            "MNT9P": ["hello-9p"],
            "MNTVIRTIOFS": ["hello-virtiofs"],
            "MNTEXT4": ["hello-ext4"],
            "MNTOVERLAY": ["changed", "hello-9p"],
            "MNTDEVPTS": ["ok"],
            "UNSHARE": ["inner", "0", "1"],
            "NETUP": ["ok"],
            "UNAME": ["~-swiftkata"],
        }
        if not virtiofs:
            del checks["MNTVIRTIOFS"]
        bad = []
        for key, words in checks.items():
            m = has(key, *words)
            if m:
                bad.append("%s: missing %s" % (key, " ".join(m)))
        if done_marker not in out:
            bad.append("guest script did not reach VERIFY-DONE")
        if bad:
            sys.stderr.write("VERIFY FAILED:\n  " + "\n  ".join(bad) + "\n")
            sys.exit(1)
        sys.stderr.write("VERIFY OK (guest powered itself off: QEMU exited after %.0f ms)\n" % exit_ms)

if not ok:
    sys.stderr.write("all %d runs failed\n" % runs)
    sys.exit(1)
med = statistics.median(ok)
sys.stderr.write("boot-to-init over %d ok runs (%d failed): median %.0f ms, min %.0f, max %.0f; "
                 "qemu exit median %.0f ms\n" % (len(ok), failures, med, min(ok), max(ok),
                                                  statistics.median(exits)))
print("%.0f" % med)
sys.exit(0 if failures == 0 else 3)
PY
if [ -n "$console_out" ] && [ -f "$work/console.log" ]; then
	cp "$work/console.log" "$console_out"
fi
if [ "$rc" != 0 ] && [ -s "$work/virtiofsd.log" ]; then
	printf -- '--- virtiofsd log ---\n' >&2
	tail -n 20 "$work/virtiofsd.log" >&2
fi
exit "$rc"
