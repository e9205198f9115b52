#!/usr/bin/env python3
"""Boot to agent-ready vs a bare busybox-init boot of the same kernel, side by side, in one run.

Both boot with identical QEMU arguments (machine pc, TCG unless --accel kvm, the agent's
virtio-serial port present in both); only the guest image differs:
  bare  : busybox /init that prints INIT-READY on the console   (time: QEMU exec -> that line)
  agent : our guest image (ext4 root disk or initramfs)          (time: QEMU exec -> first Health reply)
Runs alternate between the two so that machine load affects both alike. Also prints the agent's
RSS and the guest's memory use as the agent reports them.

Usage: bench-boot.py KERNEL IMAGE [--runs N] [--accel tcg|kvm]
"""
import argparse, os, shutil, socket, statistics, struct, subprocess, tempfile, time

CMDLINE = "console=ttyS0 quiet noapictimer no_timer_check acpi=noirq random.trust_cpu=on tsc=reliable panic=-1"

def image_args(image):
    """QEMU arguments and kernel parameters for a guest image: an ext4 root disk or an initramfs
    (the same rule as the shim's GuestImage)."""
    with open(image, "rb") as f:
        head = f.read(1082)
    if len(head) == 1082 and head[1080:1082] == b"\x53\xef":
        return (["-drive", f"file={image},if=none,id=guestroot,format=raw,readonly=on",
                 "-device", "virtio-blk-pci,drive=guestroot"], " root=/dev/vda ro rootfstype=ext4")
    return ["-initrd", image], ""

def host_tsc_parameter(accel):
    """The shim tells TCG guests the host's TSC rate (`tsc_early_khz=`, measured once per host boot
    and kept in its state directory) instead of letting them calibrate it against the emulated PIT,
    which goes wrong when the host is busy at that moment; the reference boot gets the same, or a
    busy moment makes it slower than the VMs it is compared with. Empty where no pod ran yet."""
    if accel != "tcg": return ""
    try:
        with open("/run/swiftkata/host-tsc-khz") as f:
            return f" tsc_early_khz={int(f.read().strip())}"
    except (OSError, ValueError):
        return ""

def qemu_args(kernel, image, sock, accel):
    attach, params = image_args(image)
    params += host_tsc_parameter(accel)
    return ["qemu-system-x86_64", "-machine", "pc", "-accel", accel, "-cpu", "max", "-m", "256", "-smp", "1",
            "-nodefaults", "-no-user-config", "-nographic", "-no-reboot", "-serial", "stdio",
            "-kernel", kernel] + attach + ["-append", CMDLINE + params,
            "-chardev", f"socket,id=agent,path={sock},server=on,wait=off",
            "-device", "virtio-serial-pci,id=serial0",
            "-device", "virtserialport,bus=serial0.0,chardev=agent,name=io.swiftkata.agent"]

def make_bare_initrd(workdir):
    root = os.path.join(workdir, "bare")
    os.makedirs(os.path.join(root, "bin"))
    shutil.copy("/bin/busybox", os.path.join(root, "bin", "busybox"))
    with open(os.path.join(root, "init"), "w") as f:
        f.write("#!/bin/busybox sh\n/bin/busybox echo INIT-READY\nexec /bin/busybox sleep 3600\n")
    os.chmod(os.path.join(root, "init"), 0o755)
    out = os.path.join(workdir, "bare.img")
    files = subprocess.run("find . | LC_ALL=C sort", shell=True, cwd=root, capture_output=True, check=True).stdout
    cpio = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet", "--owner=0:0"], cwd=root, input=files, capture_output=True, check=True).stdout
    with open(out, "wb") as f:
        f.write(subprocess.run(["gzip", "-9n"], input=cpio, capture_output=True, check=True).stdout)
    return out

def varint(n):
    out = b""
    while n >= 0x80:
        out += bytes([(n & 0x7f) | 0x80]); n >>= 7
    return out + bytes([n])

def field(num, payload):
    return varint(num << 3 | 2) + varint(len(payload)) + payload

def parse_varints(buf):
    """Top-level varint fields of a protobuf message -> {field: value}."""
    i, out = 0, {}
    while i < len(buf):
        key, i = read_varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            out[num], i = read_varint(buf, i)
        elif wt == 2:
            ln, i = read_varint(buf, i); i += ln
        else:
            break
    return out

def read_varint(buf, i):
    shift = result = 0
    while True:
        b = buf[i]; i += 1
        result |= (b & 0x7f) << shift
        if b < 0x80: return result, i
        shift += 7

def boot_bare(kernel, initrd, workdir, accel):
    sock = os.path.join(workdir, "bare.sock")
    start = time.monotonic()
    p = subprocess.Popen(qemu_args(kernel, initrd, sock, accel), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        buf = b""
        while b"INIT-READY" not in buf:
            chunk = p.stdout.read1(4096) if hasattr(p.stdout, "read1") else p.stdout.read(1)
            if not chunk: raise RuntimeError("bare guest ended before INIT-READY")
            buf += chunk
        return time.monotonic() - start
    finally:
        p.kill(); p.wait()

def boot_agent(kernel, image, workdir, accel):
    sock = os.path.join(workdir, "agent.sock")
    if os.path.exists(sock): os.unlink(sock)
    start = time.monotonic()
    p = subprocess.Popen(qemu_args(kernel, image, sock, accel), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # QEMU binds the socket before it listens: a connect in between is refused.
        s = socket.socket(socket.AF_UNIX)
        while True:
            if p.poll() is not None: raise RuntimeError("QEMU exited")
            try:
                s.connect(sock); break
            except (FileNotFoundError, ConnectionRefusedError):
                time.sleep(0.001)
        s.settimeout(60)
        req = field(1, b"swiftkata.agent.v1.Agent") + field(2, b"Health")
        s.sendall(struct.pack(">IIBB", len(req), 1, 1, 0) + req)
        header = b""
        while len(header) < 10: header += s.recv(10 - len(header))
        length = struct.unpack(">I", header[:4])[0]
        elapsed = time.monotonic() - start
        body = b""
        while len(body) < length: body += s.recv(length - len(body))
        # Response{status=1, payload=2}; payload is HealthResponse.
        i, payload = 0, b""
        while i < len(body):
            key, i = read_varint(body, i); ln, i = read_varint(body, i)
            if key >> 3 == 2: payload = body[i:i + ln]
            i += ln
        health = parse_varints(payload)
        return elapsed, health.get(5, 0), health.get(6, 0)
    finally:
        p.kill(); p.wait()

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kernel"); ap.add_argument("image")
    ap.add_argument("--runs", type=int, default=7); ap.add_argument("--accel", default="tcg")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="swiftkata-bench-")
    try:
        bare_img = make_bare_initrd(work)
        bare, agent, rss, used = [], [], [], []
        for _ in range(a.runs):
            bare.append(boot_bare(a.kernel, bare_img, work, a.accel))
            t, r, u = boot_agent(a.kernel, a.image, work, a.accel)
            agent.append(t); rss.append(r); used.append(u)
        mb, ma = statistics.median(bare), statistics.median(agent)
        print(f"boot under {a.accel}, machine pc, {a.runs} runs each, medians (min):")
        print(f"  bare busybox init -> INIT-READY   {mb*1000:7.0f} ms ({min(bare)*1000:.0f})   initrd {os.path.getsize(bare_img)//1024} KiB")
        print(f"  swiftkata agent   -> Health reply {ma*1000:7.0f} ms ({min(agent)*1000:.0f})   image {os.path.getsize(a.image)//1024} KiB")
        print(f"  agent overhead over bare boot     {(ma-mb)*1000:7.0f} ms   ratio {ma/mb:.2f}")
        print(f"  agent RSS in the guest            {statistics.median(rss)/1048576:7.1f} MiB")
        print(f"  guest memory in use at ready      {statistics.median(used)/1048576:7.1f} MiB")
    finally:
        shutil.rmtree(work, ignore_errors=True)

if __name__ == "__main__":
    main()
