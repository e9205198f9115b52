#!/usr/bin/env python3
"""swiftkata's container path side by side with references measured in the same run.

Rows:
  ctr run --rm … true       runc  vs  swiftkata  vs  a bare QEMU boot of the same kernel + image to
                            agent-ready (what the shim, containerd and libvirt add on top of the boot)
  ctr task exec … true      runc  vs  swiftkata (into a running container)
  stdout throughput         256 MiB from `dd` to stdout, through containerd's FIFOs, MB/s: once in a
                            new container (its start included), once as an exec into a running one
  memory per idle pod       shim RSS; shim + QEMU + virtiofsd PSS (runc: shim RSS), for one pod
                            and per pod with three running (shared pages divided among them)
  warm pool ([pool] size=1) `ctr run --rm … true` again, each pod claiming a VM the pool booted before
                            it (the row waits for the pool VM's agent first, as a pod arriving later
                            would find it); and what one warm VM costs while it waits (PSS, CPU)

A containerd of its own (own root, state and socket; CRI off) runs with the built shim on PATH.
Usage: shim-bench.py KERNEL(vmlinux) IMAGE [--runs N]
"""
import argparse, importlib.util, os, re, select, shutil, statistics, subprocess, sys, tempfile, threading, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
REF = "docker.io/swiftkata/busybox:test"
NS = "swiftkata-bench"

def load_boot_bench():
    spec = importlib.util.spec_from_file_location("bench_boot", os.path.join(ROOT, "guest-agent", "bench-boot.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

class Containerd:
    def __init__(self, workdir, kernel, image):
        self.dir = workdir
        self.sock = os.path.join(workdir, "containerd.sock")
        config = os.path.join(workdir, "configuration.toml")
        with open(config, "w") as f:
            f.write(f'[hypervisor]\nkernel = "{kernel}"\nimage = "{image}"\n')
        with open(os.path.join(workdir, "containerd.toml"), "w") as f:
            f.write(f'version = 2\nroot = "{workdir}/root"\nstate = "{workdir}/state"\n'
                    f'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\n  address = "{self.sock}"\n'
                    f'[ttrpc]\n  address = "{self.sock}.ttrpc"\n')
        env = dict(os.environ, PATH=os.path.join(ROOT, ".build", "release") + ":" + os.environ["PATH"], SWIFTKATA_CONFIG=config)
        self.log = open(os.path.join(workdir, "containerd.log"), "w")
        self.proc = subprocess.Popen(["containerd", "--config", os.path.join(workdir, "containerd.toml")], env=env,
                                     stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 20
        while not os.path.exists(self.sock):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                sys.exit(f"containerd did not start; see {workdir}/containerd.log")
            time.sleep(0.02)
        tar = os.path.join(workdir, "busybox.tar")
        subprocess.run([os.path.join(ROOT, "scripts/make-busybox-image.sh"), tar, REF], check=True)
        self.ctr("image", "import", tar)

    def ctr(self, *args, stdout=subprocess.DEVNULL, check=True):
        return subprocess.run(["ctr", "--address", self.sock, "-n", NS, *args], stdout=stdout, stderr=subprocess.PIPE, check=check)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()

def runtime_flag(runtime):
    return ["--runtime", "io.containerd.runc.v2" if runtime == "runc" else "io.containerd.swiftkata.v2"]

def time_run(containerd, runtime, n, teardowns=None):
    """`ctr run --rm` of `true`, timed. `ctr` returns once the container is deleted; a pod VM's
    shim, QEMU and virtiofsd end after that. Their exit is waited for (and its time after `ctr`
    returned added to `teardowns`) so that the next measurement does not share the CPU with them:
    bare boots that did had their median move by 300 ms between runs."""
    cid = f"bench-{runtime}-{n}"
    start = time.monotonic()
    containerd.ctr("run", "--rm", *runtime_flag(runtime), REF, cid, "true")
    elapsed = time.monotonic() - start
    if runtime == "swiftkata":
        returned = time.monotonic()
        wait_for_exit(pids_matching(f"-id {cid}", "-namespace " + NS) + pids_matching(f"guest=swiftkata-{NS}-{cid}")
                      + pids_matching("virtiofsd", "/run/swiftkata/pods"))
        if teardowns is not None: teardowns.append(time.monotonic() - returned)
    return elapsed

def wait_for_exit(pids, timeout=30):
    """Returns once every process in `pids` has exited (pidfds), or after `timeout` seconds."""
    fds = []
    for pid in pids:
        try:
            fds.append(os.pidfd_open(pid))
        except OSError:
            pass  # gone already
    try:
        deadline = time.monotonic() + timeout
        pending = list(fds)
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                print(f"warning: {len(pending)} process(es) of the last pod still ran after {timeout} s", file=sys.stderr)
                return
            ready, _, _ = select.select(pending, [], [], left)
            pending = [fd for fd in pending if fd not in ready]
    finally:
        for fd in fds: os.close(fd)

def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            return int(re.search(r"^Pss:\s+(\d+)", f.read(), re.M).group(1))
    except (OSError, AttributeError):
        return 0

def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return int(re.search(r"^VmRSS:\s+(\d+)", f.read(), re.M).group(1))
    except (OSError, AttributeError):
        return 0

def pids_matching(*needles):
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit(): continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if all(n in cmd for n in needles): found.append(int(entry))
    return found

def cpu_ticks(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
        except (OSError, IndexError, ValueError):
            pass
    return total

POOL = "/run/swiftkata/pool"

def warm_vm_ready(timeout=60):
    """The published pool VM whose agent is up (its console has the agent's "agent listening" line)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for key in os.listdir(POOL) if os.path.isdir(POOL) else []:
            for entry in os.listdir(os.path.join(POOL, key)) if not key.startswith(".") else []:
                if entry.startswith("."): continue
                try:
                    with open(os.path.join(POOL, key, entry, "console.log"), errors="replace") as f:
                        if "agent listening" in f.read(): return entry
                except OSError:
                    pass
        time.sleep(0.05)
    sys.exit(f"no warm VM became ready within {timeout} s (see {POOL})")

def start_at_once(containerd, runtime, count):
    """Starts `count` sleeping containers in parallel; returns the time until all run, and the host
    PSS per pod with all of them running (shims, and for swiftkata QEMU and virtiofsd)."""
    ids = [f"bench-{runtime}-burst-{n}" for n in range(count)]
    failures = []

    def start(cid):
        if containerd.ctr("run", "-d", *runtime_flag(runtime), REF, cid, "sleep", "3600", check=False).returncode != 0:
            failures.append(cid)
    begin = time.monotonic()
    threads = [threading.Thread(target=start, args=(cid,)) for cid in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - begin
    try:
        if failures:
            raise RuntimeError(f"{len(failures)} of {count} {runtime} containers did not start: {failures}")
        time.sleep(3)
        return elapsed, pss_per_pod(runtime, ids)
    finally:
        remove_containers(containerd, ids)


def pss_per_pod(runtime, ids):
    """Host PSS per running container: its shim, and for swiftkata its QEMU and the virtiofsds
    (shared mappings divided among them, as on a node)."""
    pids = []
    for cid in ids:
        pids += pids_matching(f"-id {cid}", "-namespace " + NS)
        if runtime == "swiftkata":
            pids += pids_matching(f"guest=swiftkata-{NS}-{cid}")
    if runtime == "swiftkata":
        pids += pids_matching("virtiofsd", "/run/swiftkata/pods")
    return sum(pss_kib(p) for p in pids) / len(ids)


def remove_containers(containerd, ids):
    for cid in ids:
        containerd.ctr("task", "kill", "-s", "SIGKILL", cid, check=False)
    time.sleep(1)
    for cid in ids:
        containerd.ctr("task", "rm", "-f", cid, check=False)
        containerd.ctr("container", "rm", cid, check=False)


def median_ms(values):
    return statistics.median(values) * 1000

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("kernel"); parser.add_argument("image")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="swiftkata-bench-")
    containerd = Containerd(work, args.kernel, args.image)
    boot = load_boot_bench()
    try:
        runc, kata, bare, teardowns = [], [], [], []
        time_run(containerd, "swiftkata", "warm")  # caches the KVM probe, warms page cache
        for n in range(args.runs):  # interleaved so machine load affects all alike
            runc.append(time_run(containerd, "runc", n))
            kata.append(time_run(containerd, "swiftkata", n, teardowns))
            bare.append(boot.boot_agent(args.kernel, args.image, work, "tcg")[0])

        # exec latency and stdout throughput, against one running container per runtime
        exec_times, throughput, exec_throughput, memory = {}, {}, {}, {}
        for runtime in ["runc", "swiftkata"]:
            cid = f"bench-{runtime}-idle"
            containerd.ctr("run", "-d", *runtime_flag(runtime), REF, cid, "sleep", "3600")
            try:
                times = []
                for n in range(args.runs):
                    start = time.monotonic()
                    containerd.ctr("task", "exec", "--exec-id", f"e{n}", cid, "true")
                    times.append(time.monotonic() - start)
                exec_times[runtime] = times
                # memory of the idle pod: after the exec loop, once freed guest pages were reported back
                time.sleep(3)
                shim = pids_matching(f"-id {cid}", "-namespace " + NS)
                shim_rss = sum(rss_kib(p) for p in shim)
                if runtime == "swiftkata":
                    qemu = pids_matching(f"guest=swiftkata-{NS}-{cid}")
                    virtiofsd = pids_matching("virtiofsd", "/run/swiftkata/pods")
                    memory[runtime] = (shim_rss, sum(pss_kib(p) for p in shim + qemu + virtiofsd), sum(pss_kib(p) for p in qemu), sum(pss_kib(p) for p in virtiofsd))
                else:
                    memory[runtime] = (shim_rss, sum(pss_kib(p) for p in shim), 0, 0)
                # stdout streaming alone: an exec into the running container, no start cost
                sink = open(os.devnull, "wb")
                start = time.monotonic()
                containerd.ctr("task", "exec", "--exec-id", "dd", cid, "dd", "if=/dev/zero", "bs=1M", "count=256", stdout=sink)
                exec_throughput[runtime] = 256 * 1.048576 / (time.monotonic() - start)
            finally:
                containerd.ctr("task", "kill", "-s", "SIGKILL", cid, check=False)
                time.sleep(0.5)
                containerd.ctr("task", "rm", "-f", cid, check=False)
                containerd.ctr("container", "rm", cid, check=False)
            sink = open(os.devnull, "wb")
            start = time.monotonic()
            containerd.ctr("run", "--rm", *runtime_flag(runtime), REF, f"bench-{runtime}-dd",
                           "dd", "if=/dev/zero", "bs=1M", "count=256", stdout=sink)
            throughput[runtime] = 256 * 1.048576 / (time.monotonic() - start)

        # memory per pod when several run: what they share (QEMU, the kernel and image, the shim's
        # text and libraries) is divided among them, as it is on a node
        per_pod = {}
        for runtime in ["runc", "swiftkata"]:
            ids = [f"bench-{runtime}-many-{n}" for n in range(3)]
            for cid in ids:
                containerd.ctr("run", "-d", *runtime_flag(runtime), REF, cid, "sleep", "3600")
            time.sleep(3)
            per_pod[runtime] = pss_per_pod(runtime, ids)
            remove_containers(containerd, ids)

        # ten pods at once: time until all run, and what each costs the host with all ten running
        burst = {runtime: start_at_once(containerd, runtime, 10) for runtime in ["runc", "swiftkata"]}

        # a pod sized for its limits (2 vCPUs, 1 GiB) against the base size: start time, and what its
        # idle VM costs the host (memory the guest never touches must not)
        sized_config = os.path.join(work, "configuration-sized.toml")
        with open(sized_config, "w") as f:
            f.write(f'[hypervisor]\nkernel = "{args.kernel}"\nimage = "{args.image}"\nenable_annotations = ["vcpus", "memory_mib"]\n')
        sized_flags = ["--runtime-config-path", sized_config, "--annotation", "io.swiftkata.hypervisor.vcpus=2",
                       "--annotation", "io.swiftkata.hypervisor.memory_mib=1024"]
        sized = []
        for n in range(args.runs):
            start = time.monotonic()
            containerd.ctr("run", "--rm", *runtime_flag("swiftkata"), *sized_flags, REF, f"bench-sized-{n}", "true")
            sized.append(time.monotonic() - start)
        containerd.ctr("run", "-d", *runtime_flag("swiftkata"), *sized_flags, REF, "bench-sized-idle", "sleep", "3600")
        try:
            containerd.ctr("task", "exec", "--exec-id", "e", "bench-sized-idle", "true")
            time.sleep(3)
            sized_pss = sum(pss_kib(p) for p in pids_matching(f"guest=swiftkata-{NS}-bench-sized-idle")
                            + pids_matching("virtiofsd", "/run/swiftkata/pods"))
        finally:
            containerd.ctr("task", "kill", "-s", "SIGKILL", "bench-sized-idle", check=False)
            time.sleep(0.5)
            containerd.ctr("task", "rm", "-f", "bench-sized-idle", check=False)
            containerd.ctr("container", "rm", "bench-sized-idle", check=False)

        # growth: a container with a 512 MiB memory limit in a VM of the base size; the VM hot-adds
        # 512 MiB (virtio-mem) before the guest creates the container. Against the same run without a
        # limit, the difference is the hot-add as a pod start sees it.
        hot_add = {}
        for runtime in ["runc", "swiftkata"]:
            times = []
            for n in range(args.runs):
                start = time.monotonic()
                containerd.ctr("run", "--rm", *runtime_flag(runtime), "--memory-limit", str(512 << 20), REF, f"bench-{runtime}-grow-{n}", "true")
                times.append(time.monotonic() - start)
            hot_add[runtime] = times

        # what a VM that can grow costs at boot (vCPU threads, the virtio-mem device) against one
        # that keeps its boot size
        fixed_config = os.path.join(work, "configuration-fixed.toml")
        with open(fixed_config, "w") as f:
            f.write(f'[hypervisor]\nkernel = "{args.kernel}"\nimage = "{args.image}"\nhotplug = false\n')
        fixed, growable = [], []
        for n in range(args.runs):
            start = time.monotonic()
            containerd.ctr("run", "--rm", *runtime_flag("swiftkata"), "--runtime-config-path", fixed_config, REF, f"bench-fixed-{n}", "true")
            fixed.append(time.monotonic() - start)
            growable.append(time_run(containerd, "swiftkata", f"growable-{n}"))

        # warm pool: every pod claims a VM booted before it; each shim then boots the next one
        pool_config = os.path.join(work, "configuration-pool.toml")
        with open(pool_config, "w") as f:
            f.write(f'[hypervisor]\nkernel = "{args.kernel}"\nimage = "{args.image}"\n[pool]\nsize = 1\n')
        pool_flag = ["--runtime-config-path", pool_config]
        containerd.ctr("run", "--rm", *runtime_flag("swiftkata"), *pool_flag, REF, "bench-pool-fill", "true")
        pooled = []
        for n in range(args.runs):
            entry = warm_vm_ready()
            if n == 0:  # what a warm VM costs while it waits
                time.sleep(3)
                pids = pids_matching(f"guest=swiftkata_pool-{entry}") + pids_matching("virtiofsd", f"{POOL}/")
                before = cpu_ticks(pids)
                time.sleep(5)
                warm_cpu = (cpu_ticks(pids) - before) / os.sysconf("SC_CLK_TCK") / 5 * 100
                warm_pss = sum(pss_kib(p) for p in pids)
            start = time.monotonic()
            containerd.ctr("run", "--rm", *runtime_flag("swiftkata"), *pool_flag, REF, f"bench-pool-{n}", "true")
            pooled.append(time.monotonic() - start)
        warm_vm_ready()  # the last refill finished before the pool is drained
        shim = os.path.join(ROOT, ".build", "release", "containerd-shim-swiftkata-v2")
        subprocess.run([shim, "drain-pool"], env=dict(os.environ, SWIFTKATA_CONFIG=pool_config), stdout=subprocess.DEVNULL, check=True)

        print(f"swiftkata shim benchmark ({args.runs} runs each, medians; TCG guest; containerd {containerd_version()})\n")
        print(f"{'row':<44}{'runc':>12}{'swiftkata':>12}{'bare boot':>12}{'ratio':>10}")
        r, k, b = median_ms(runc), median_ms(kata), median_ms(bare)
        print(f"{'ctr run --rm true (ms)':<44}{r:>12.0f}{k:>12.0f}{b:>12.0f}{k / r:>9.1f}x")
        print(f"{'  swiftkata over the bare boot (ms)':<44}{'':>12}{k - b:>12.0f}{'':>12}{'(target <= 150)':>10}")
        print(f"{'  pod VM gone, after ctr returned (ms)':<44}{'':>12}{median_ms(teardowns):>12.0f}")
        er, ek = median_ms(exec_times["runc"]), median_ms(exec_times["swiftkata"])
        print(f"{'ctr task exec true (ms)':<44}{er:>12.0f}{ek:>12.0f}{'':>12}{ek / er:>9.1f}x  (target <= runc + 20)")
        tr, tk = throughput["runc"], throughput["swiftkata"]
        print(f"{'stdout 256 MiB via dd (MB/s, incl. start)':<44}{tr:>12.0f}{tk:>12.0f}{'':>12}{tk / tr:>9.2f}x  (target >= 100)")
        tr, tk = exec_throughput["runc"], exec_throughput["swiftkata"]
        print(f"{'stdout 256 MiB via dd in exec (MB/s)':<44}{tr:>12.0f}{tk:>12.0f}{'':>12}{tk / tr:>9.2f}x  (target >= 150 and >= 0.3x)")
        print(f"{'shim RSS, idle pod (MiB)':<44}{memory['runc'][0] / 1024:>12.1f}{memory['swiftkata'][0] / 1024:>12.1f}{'':>12}{'(target <= 15)':>10}")
        total, qemu, virtiofsd = memory["swiftkata"][1:]
        print(f"{'host PSS per idle pod (MiB)':<44}{memory['runc'][1] / 1024:>12.1f}{total / 1024:>12.1f}{'':>12}{'(target <= 90)':>10}")
        print(f"{'  of which QEMU / virtiofsd (MiB)':<44}{'':>12}{qemu / 1024:>6.1f} / {virtiofsd / 1024:.1f}")
        print(f"{'host PSS per pod, 3 idle pods (MiB)':<44}{per_pod['runc'] / 1024:>12.1f}{per_pod['swiftkata'] / 1024:>12.1f}{'':>12}{'(target <= 75)':>10}")
        (br, bpr), (bk, bpk) = burst["runc"], burst["swiftkata"]
        print(f"{'10 pods at once: all running (s)':<44}{br:>12.1f}{bk:>12.1f}{'':>12}{bk / br:>9.1f}x")
        print(f"{'  host PSS per pod with all ten (MiB)':<44}{bpr / 1024:>12.1f}{bpk / 1024:>12.1f}")
        s = median_ms(sized)
        print(f"{'ctr run --rm true, 2 vCPU 1 GiB VM (ms)':<44}{r:>12.0f}{s:>12.0f}{b:>12.0f}{s / k:>9.2f}x  (vs the base VM)")
        print(f"{'host PSS, idle pod, 1 GiB VM (MiB)':<44}{'':>12}{sized_pss / 1024:>12.1f}{'':>12}{sized_pss / max(total, 1):>9.2f}x  (vs 256 MiB)")
        f, g = median_ms(fixed), median_ms(growable)
        hr, hk = median_ms(hot_add["runc"]), median_ms(hot_add["swiftkata"])
        print(f"{'ctr run --rm true, 512 MiB limit (ms)':<44}{hr:>12.0f}{hk:>12.0f}{'':>12}{hk / hr:>9.1f}x")
        print(f"{'  the 512 MiB hot-add in it (ms)':<44}{hr - r:>12.0f}{hk - g:>12.0f}{'':>12}{'(vs no limit)':>10}")
        print(f"{'ctr run --rm true, hotplug off / on (ms)':<44}{'':>12}{f:>6.0f} / {g:.0f}{'':>6}{g / f:>9.2f}x  (boot cost of growth)")
        p = median_ms(pooled)
        print(f"{'ctr run --rm true, warm pool of 1 (ms)':<44}{r:>12.0f}{p:>12.0f}{b:>12.0f}{p / r:>9.1f}x  (target <= 200)")
        print(f"{'  one warm VM waiting: PSS (MiB) / CPU (%)':<44}{'':>12}{warm_pss / 1024:>6.1f} / {warm_cpu:.1f}")
    finally:
        containerd.stop()
        shutil.rmtree(work, ignore_errors=True)

def containerd_version():
    out = subprocess.run(["containerd", "--version"], capture_output=True, text=True).stdout.split()
    return out[2] if len(out) > 2 else "?"

if __name__ == "__main__":
    main()
