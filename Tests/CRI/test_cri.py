"""End-to-end tests through containerd's real CRI gRPC API (what the kubelet uses), against a private
containerd (private_containerd.py). The runtime handler comes from $CRI_RUNTIME_HANDLER: `kata-runtime`
(swiftkata, the default) or `runc` (checks the harness, the client and the tests themselves).

Pods are shared across tests (each swiftkata pod boots a VM): "web" has container A (busybox httpd) and
container B (a sleeper); "client" has one sleeper. The swiftkata configuration keeps a warm pool of one
VM: "web" boots its own VM, its shim then boots one for the pool, and "client" claims that one. Tests run in name order; the last one removes the
pods and checks that nothing is left on the host. Waits poll real signals with deadlines.

Run: make cri-test   (or: /usr/bin/python3 -m unittest discover -v -s Tests/CRI)
"""
import grp
import json
import os
import pty
import re
import select
import sys
import subprocess
import time
import unittest
import urllib.request
import uuid

import grpc
from prometheus_client.parser import text_string_to_metric_families

import cri_stream
import cri_subset_pb2 as pb
import host_state
from polling import wait_for
from private_containerd import BUSYBOX_IMAGE, PAUSE_COMMAND, PAUSE_IMAGE, REPO_ROOT, PrivateContainerd

HANDLER = os.environ.get("CRI_RUNTIME_HANDLER", "kata-runtime")
SWIFTKATA = HANDLER != "runc"
WEB_HOSTNAME = "swiftkata-cri-web"
INDEX = "hello from the host, served by busybox httpd in a pod\n"
SLEEPER = ["sh", "-c", "trap 'exit 0' TERM; echo cri-log-stdout; echo cri-log-stderr >&2; sleep 2147483647 & wait"]
HTTPD = ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]
LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)) (stdout|stderr) ([FP]) (.*)$")

harness = None


def ctl_command():
    return [f"{harness.shim_dir}/swiftkata-ctl", "--config", f"{harness.directory}/configuration.toml"]


def host_checks(*options):
    """`swiftkata-check --json` with this run's configuration and containerd: each check by name."""
    result = subprocess.run(
        [f"{harness.shim_dir}/swiftkata-check", "--json", "--config", f"{harness.directory}/configuration.toml",
         "--containerd-socket", harness.socket, *options], capture_output=True, text=True, timeout=120)
    return {check["name"]: check for check in json.loads(result.stdout)["checks"]}


def host_check(name):
    """One check of `swiftkata-check --json` (this run's configuration and containerd)."""
    return host_checks()[name]


def libvirt_capability_cache():
    """libvirt's cached QEMU capabilities, by file: their modification times (a re-probe rewrites them)."""
    directory = "/var/cache/libvirt/qemu/capabilities"
    return {name: os.stat(f"{directory}/{name}").st_mtime_ns for name in os.listdir(directory)} if os.path.isdir(directory) else {}


def restart_libvirtd():
    """Restarts libvirtd the way this host runs it (systemd, or .ci/run's `tini -s -- libvirtd`);
    running VMs carry on (the pods' shims watch QEMU itself)."""
    if os.path.isdir("/run/systemd/system"):
        subprocess.run(["systemctl", "restart", "libvirtd"], check=True, timeout=60)
    else:
        # Only live processes count: one killed earlier may linger as a zombie where PID 1 does not reap.
        def gone():
            return subprocess.run(["pgrep", "-x", "-r", "R,S,D", "libvirtd"], capture_output=True).returncode != 0
        subprocess.run(["pkill", "-x", "libvirtd"])
        try:
            wait_for(gone, 10, "libvirtd to exit")
        except Exception:
            subprocess.run(["pkill", "-9", "-x", "libvirtd"])
            wait_for(gone, 10, "libvirtd to exit after SIGKILL")
        log = open("/var/log/swiftkata/libvirtd.log", "ab")
        subprocess.Popen(["tini", "-s", "--", "libvirtd"], stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        log.close()
    wait_for(lambda: subprocess.run(["virsh", "-c", "qemu:///system", "version"], capture_output=True).returncode == 0,
             30, "libvirtd to answer")


def booting_pool_vms():
    """Warm-pool VMs whose domain is still starting (`.booting-<entry>` directories)."""
    pool = host_state.POOL_DIRECTORY
    keys = [key for key in os.listdir(pool) if not key.startswith(".")] if os.path.isdir(pool) else []
    return [entry for key in keys for entry in os.listdir(f"{pool}/{key}") if entry.startswith(".booting-")]


def scrape_metrics():
    """One scrape of `swiftkata-ctl serve-metrics` over HTTP, as Prometheus does it."""
    server = subprocess.Popen(ctl_command()[:1] + ["serve-metrics", "--listen", "127.0.0.1:0"] + ctl_command()[1:],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = server.stdout.readline()
        port = int(re.fullmatch(r"listening on port (\d+)\n", line).group(1))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            return response.read().decode()
    finally:
        server.terminate()
        server.wait(timeout=10)


def run_console(pod_id, keys):
    """`swiftkata-ctl console` on a pseudo-terminal, typing `keys`; its output and exit status."""
    main, secondary = pty.openpty()
    console = subprocess.Popen(ctl_command()[:1] + ["console", pod_id] + ctl_command()[1:],
                               stdin=secondary, stdout=secondary, stderr=secondary, start_new_session=True)
    os.close(secondary)
    try:
        if keys:
            os.write(main, keys)
        output = b""
        while True:
            ready, _, _ = select.select([main], [], [], 60)
            if not ready:
                raise AssertionError(f"the console went quiet: {output!r}")
            try:
                chunk = os.read(main, 4096)
            except OSError:  # EIO: the console exited and closed the terminal
                break
            if not chunk:
                break
            output += chunk
        return output.decode(errors="replace"), console.wait(timeout=30)
    finally:
        if console.poll() is None:
            console.kill()
        os.close(main)


def setUpModule():
    global harness
    harness = PrivateContainerd.started(HANDLER)


def tearDownModule():
    if harness is not None:
        harness.stop()


class Pod:
    """A pod sandbox the tests made, with its config (CreateContainer needs it) and its containers."""

    def __init__(self, name, hostname="", mounts=(), sysctls=None, privileged=False, pid=pb.CONTAINER, ipc=pb.POD, annotations=None,
                 cgroup_parent=""):
        self.name = name
        self.log_directory = f"{harness.log_root}/{name}"
        os.makedirs(self.log_directory, exist_ok=True)
        self.config = pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=name, uid=str(uuid.uuid4()), namespace="swiftkata-cri"),
            hostname=hostname,
            log_directory=self.log_directory,
            labels={"swiftkata-cri-test": name},
            annotations=annotations or {},
            linux=pb.LinuxPodSandboxConfig(cgroup_parent=cgroup_parent, security_context=pb.LinuxSandboxSecurityContext(
                namespace_options=pb.NamespaceOption(network=pb.POD, pid=pid, ipc=ipc), privileged=privileged),
                sysctls=sysctls or {}),
        )
        self.id = harness.client.RunPodSandbox(
            pb.RunPodSandboxRequest(config=self.config, runtime_handler=HANDLER)).pod_sandbox_id
        harness.track_pod(self.id)
        self.containers = {}

    def status(self):
        return harness.client.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=self.id)).status

    @property
    def ip(self):
        return self.status().network.ip

    def run_container(self, name, command, mounts=(), attempt=0, stdin=False, privileged=False, resources=None, pid=None,
                      target="", devices=()):
        """Creates and starts a container; returns its id once CRI reports it RUNNING."""
        config = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=name, attempt=attempt),
            image=pb.ImageSpec(image=BUSYBOX_IMAGE),
            command=command,
            mounts=list(mounts),
            devices=list(devices),
            log_path=f"{name}_{attempt}.log",
            labels={"swiftkata-cri-test": f"{self.name}/{name}"},
            stdin=stdin,
        )
        if privileged:
            config.linux.security_context.privileged = True
        if resources is not None:
            config.linux.resources.CopyFrom(resources)
        if pid is not None:
            config.linux.security_context.namespace_options.pid = pid
            config.linux.security_context.namespace_options.target_id = target
        container_id = harness.client.CreateContainer(pb.CreateContainerRequest(
            pod_sandbox_id=self.id, config=config, sandbox_config=self.config)).container_id
        harness.client.StartContainer(pb.StartContainerRequest(container_id=container_id))
        wait_for(lambda: container_status(container_id).state == pb.CONTAINER_RUNNING, 60,
                 f"container {name} RUNNING")
        self.containers[name] = container_id
        return container_id

    def remove(self):
        """Stops and removes the pod (a test's own pod, in its `finally`)."""
        harness.client.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=self.id))
        harness.client.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=self.id))

    def remove_container(self, name):
        """Stops one of this pod's containers at once (no grace period) and removes it."""
        container_id = self.containers[name]
        harness.client.StopContainer(pb.StopContainerRequest(container_id=container_id, timeout=0))
        harness.client.RemoveContainer(pb.RemoveContainerRequest(container_id=container_id))
        del self.containers[name]


def remove_pod_cgroup(parent):
    """What kubelet does after a pod: removes the pod-level cgroup it named as the sandbox's parent,
    in every hierarchy, once the runtime removed the sandbox's own cgroup below it."""
    wait_for(lambda: all(not any(os.path.isdir(f"{d}/{e}") for e in os.listdir(d)) for d in host_state.cgroups_named(parent)),
             10, "the sandbox's cgroups removed")
    for directory in host_state.cgroups_named(parent):
        os.rmdir(directory)


def container_status(container_id):
    return harness.client.ContainerStatus(pb.ContainerStatusRequest(container_id=container_id)).status


def exec_sync(container_id, command, timeout=30):
    return harness.client.ExecSync(pb.ExecSyncRequest(container_id=container_id, cmd=command, timeout=timeout))


def host_get(url):
    """HTTP GET from the host, never through a proxy from the environment."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=3) as response:
        return response.read().decode()


class CRIEndToEnd(unittest.TestCase):
    """One flow through shared pods; see the module docstring."""

    _fixtures = {}

    @classmethod
    def fixture(cls, name, make):
        """Builds a shared fixture once; a failure is remembered and re-raised by every test needing it."""
        if name not in cls._fixtures:
            try:
                cls._fixtures[name] = (make(), None)
            except Exception as error:  # noqa: BLE001
                cls._fixtures[name] = (None, error)
        value, error = cls._fixtures[name]
        if error is not None:
            reason = error.details() if isinstance(error, grpc.RpcError) else error
            raise AssertionError(f"fixture {name} failed: {reason}") from error
        return value

    # --- fixtures ------------------------------------------------------------------------------

    @classmethod
    def volumes(cls):
        def make():
            root = harness.volume_root
            paths = {name: f"{root}/{name}" for name in ("www", "host", "readonly", "shared")}
            for path in paths.values():
                os.makedirs(path)
                os.chmod(path, 0o777)
            with open(f"{paths['www']}/index.html", "w") as f:
                f.write(INDEX)
            with open(f"{paths['readonly']}/original.txt", "w") as f:
                f.write("original\n")
            return paths
        return cls.fixture("volumes", make)

    @classmethod
    def web(cls):
        """Pod "web": A = httpd on :8080 serving a read-only hostPath, plus a read-write hostPath, a
        read-only hostPath and the shared (emptyDir-like) directory; B = a sleeper with the shared dir."""
        def make():
            volumes = cls.volumes()
            pod = Pod("web", hostname=WEB_HOSTNAME)
            pod.run_container("a", HTTPD, mounts=[
                pb.Mount(container_path="/www", host_path=volumes["www"], readonly=True),
                pb.Mount(container_path="/host", host_path=volumes["host"]),
                pb.Mount(container_path="/ro", host_path=volumes["readonly"], readonly=True),
                pb.Mount(container_path="/shared", host_path=volumes["shared"]),
            ])
            pod.run_container("b", SLEEPER, mounts=[pb.Mount(container_path="/shared", host_path=volumes["shared"])])
            return pod
        return cls.fixture("web", make)

    @classmethod
    def client_pod(cls):
        def make():
            if SWIFTKATA:
                # The web pod's shim boots a VM for the warm pool once its sandbox runs: this pod claims it.
                wait_for(lambda: host_state.pool_entries(), 60, "a warm-pool VM booted by the web pod's shim")
            pod = Pod("client")
            pod.run_container("c", SLEEPER)
            return pod
        return cls.fixture("client", make)

    # --- tests ---------------------------------------------------------------------------------

    def test_01_runtime_and_images(self):
        version = harness.client.Version(pb.VersionRequest(version="v1"))
        self.assertEqual(version.runtime_name, "containerd")
        self.assertEqual(version.runtime_api_version, "v1")
        conditions = {c.type: c.status for c in harness.client.Status(pb.StatusRequest()).status.conditions}
        self.assertEqual(conditions, {"RuntimeReady": True, "NetworkReady": True})
        tags = {tag for image in harness.client.ListImages(pb.ListImagesRequest()).images for tag in image.repo_tags}
        self.assertLessEqual({BUSYBOX_IMAGE, PAUSE_IMAGE}, tags)
        image = harness.client.ImageStatus(pb.ImageStatusRequest(image=pb.ImageSpec(image=BUSYBOX_IMAGE))).image
        self.assertTrue(image.id.startswith("sha256:"), image)
        self.assertGreater(image.size, 0)

    def test_02_pod_runs_two_containers_in_one_vm(self):
        pod = self.web()
        status = pod.status()
        self.assertEqual(status.state, pb.SANDBOX_READY)
        self.assertEqual(status.runtime_handler, HANDLER)
        self.assertEqual(status.metadata.name, "web")
        listed = harness.client.ListContainers(pb.ListContainersRequest(filter=pb.ContainerFilter(pod_sandbox_id=pod.id)))
        self.assertEqual({c.metadata.name: c.state for c in listed.containers},
                         {"a": pb.CONTAINER_RUNNING, "b": pb.CONTAINER_RUNNING})
        # One shim per pod, whatever the runtime (containers join their sandbox's shim).
        self.assertEqual(len(host_state.shim_pids(harness.socket, pod.id)), 1, "shims started for the pod")
        self.assertEqual(len(host_state.shim_pids(harness.socket)), len(harness.pod_ids), "shims of this containerd")
        if SWIFTKATA:
            self.assertEqual(len(host_state.qemu_pids(pod.id)), 1, "QEMU processes of the pod")
            self.assertEqual(host_state.pod_domain(pod.id), host_state.domain_name(pod.id), "the first pod boots its own VM")
            self.assertIn(host_state.domain_name(pod.id), host_state.libvirt_domains() or [])

    @unittest.skipUnless(SWIFTKATA, "swiftkata's warm pool")
    def test_02c_second_pod_claims_a_warm_vm(self):
        # The client pod (its network, hostname and containers) runs in the VM the pool booted ahead.
        pod = self.client_pod()
        domain = host_state.pod_domain(pod.id)
        self.assertTrue(domain.startswith(host_state.POOL_DOMAIN_PREFIX), f"client pod runs in {domain}")
        self.assertIn(domain, host_state.libvirt_domains() or [])
        self.assertEqual(len(host_state.qemu_pids(pod.id)), 1, "QEMU processes of the pod")
        self.assertEqual(exec_sync(pod.containers["c"], ["true"]).exit_code, 0)

    def test_02b_pod_containers_share_uts_ipc_and_pid(self):
        # The containers' own namespace_options are left unset, so CRI gives them the pod's IPC and
        # PID namespaces (POD = 0, as kubelet does with shareProcessNamespace); UTS is always the pod's.
        pod = self.web()
        views = {}
        for name in ["a", "b"]:
            result = exec_sync(pod.containers[name], ["sh", "-c", "hostname; for n in ipc uts pid; do readlink /proc/self/ns/$n; done"])
            self.assertEqual(result.exit_code, 0, result.stderr)
            views[name] = result.stdout.decode().split()
        self.assertEqual(views["a"][0], WEB_HOSTNAME)
        self.assertEqual(views["b"][0], WEB_HOSTNAME)
        self.assertEqual(views["a"][1:], views["b"][1:], "ipc, uts and pid namespaces are the pod's")
        sandbox_pid_ns = exec_sync(pod.containers["a"], ["sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '"])
        self.assertEqual(sandbox_pid_ns.stdout.decode().strip(), PAUSE_COMMAND, "pid 1 of the shared namespace is the pause process")

    def test_03_http_from_host(self):
        ip = self.web().ip
        self.assertTrue(ip.startswith("10.99.0."), f"pod IP {ip!r}")
        self.assertEqual(wait_for(lambda: host_get(f"http://{ip}:8080/"), 30, f"GET http://{ip}:8080/"), INDEX)

    def test_03b_port_forward_reaches_loopback_and_pod_address_servers(self):
        # kubectl port-forward: CRI's PortForward dials localhost:<port> in the pod's network
        # namespace, which reaches the pod's servers under runc, and must under swiftkata too.
        pod = self.web()
        request = b"GET / HTTP/1.0\r\n\r\n"

        def forward(port):
            url = harness.client.PortForward(pb.PortForwardRequest(pod_sandbox_id=pod.id, port=[port])).url
            return cri_stream.port_forward(url, port, request, timeout=30)

        # httpd on every address.
        reply, error = forward(8080)
        self.assertEqual(error, "")
        self.assertIn(b" 200 ", reply.split(b"\r\n", 1)[0], reply[:200])
        self.assertTrue(reply.endswith(INDEX.encode()), reply[-200:])
        # Only on the pod's loopback: what port-forward is most often for (a debug endpoint).
        serve = "mkdir -p /tmp/{0} && echo {0} > /tmp/{0}/index.html && httpd -p {1} -h /tmp/{0}"
        exec_sync(pod.containers["b"], ["sh", "-c", serve.format("loopback", "127.0.0.1:8081")])
        reply, _ = wait_for(lambda: (lambda r: r if r[0] else None)(forward(8081)), 30, "a reply through port 8081")
        self.assertTrue(reply.endswith(b"loopback\n"), reply[-200:])
        if SWIFTKATA:
            # Only on the pod's address: the guest dials its addresses when nothing answers on its
            # loopback (under runc, containerd's dial to localhost finds nothing there).
            exec_sync(pod.containers["b"], ["sh", "-c", serve.format("address", f"{pod.ip}:8082")])
            reply, _ = wait_for(lambda: (lambda r: r if r[0] else None)(forward(8082)), 30, "a reply through port 8082")
            self.assertTrue(reply.endswith(b"address\n"), reply[-200:])
        # A port nothing listens on: the client gets no bytes, and nothing hangs.
        reply, _ = forward(8099)
        self.assertEqual(reply, b"")

    def test_04_pod_to_pod(self):
        web, client = self.web(), self.client_pod()
        self.assertNotEqual(web.ip, client.ip)
        sleeper = client.containers["c"]
        wait_for(lambda: exec_sync(sleeper, ["ping", "-c", "1", "-W", "2", web.ip]).exit_code == 0, 30,
                 f"ping {web.ip} from the client pod")
        fetched = exec_sync(sleeper, ["wget", "-q", "-O", "-", f"http://{web.ip}:8080/"])
        self.assertEqual((fetched.exit_code, fetched.stdout.decode()), (0, INDEX), fetched.stderr)

    def test_05_hostpath_read_write(self):
        volumes, a = self.volumes(), self.web().containers["a"]
        with open(f"{volumes['host']}/from-host.txt", "w") as f:
            f.write("written on the host\n")
        read = exec_sync(a, ["cat", "/host/from-host.txt"])
        self.assertEqual((read.exit_code, read.stdout), (0, b"written on the host\n"), read.stderr)
        wrote = exec_sync(a, ["sh", "-c", "echo written in the container > /host/from-container.txt"])
        self.assertEqual(wrote.exit_code, 0, wrote.stderr)
        with open(f"{volumes['host']}/from-container.txt") as f:
            self.assertEqual(f.read(), "written in the container\n")

    def test_06_readonly_mount_rejects_writes(self):
        volumes, a = self.volumes(), self.web().containers["a"]
        read = exec_sync(a, ["cat", "/ro/original.txt"])
        self.assertEqual((read.exit_code, read.stdout), (0, b"original\n"), read.stderr)
        overwrite = exec_sync(a, ["sh", "-c", "echo changed > /ro/original.txt"])
        self.assertNotEqual(overwrite.exit_code, 0, "overwriting a file on a read-only mount")
        create = exec_sync(a, ["touch", "/ro/new.txt"])
        self.assertNotEqual(create.exit_code, 0, "creating a file on a read-only mount")
        with open(f"{volumes['readonly']}/original.txt") as f:
            self.assertEqual(f.read(), "original\n")
        self.assertEqual(sorted(os.listdir(volumes["readonly"])), ["original.txt"])

    def test_07_emptydir_shared_between_containers(self):
        pod = self.web()
        wrote = exec_sync(pod.containers["a"], ["sh", "-c", "echo from A > /shared/a.txt"])
        self.assertEqual(wrote.exit_code, 0, wrote.stderr)
        read = exec_sync(pod.containers["b"], ["cat", "/shared/a.txt"])
        self.assertEqual((read.exit_code, read.stdout), (0, b"from A\n"), read.stderr)

    def test_08_exec_sync(self):
        a = self.web().containers["a"]
        result = exec_sync(a, ["sh", "-c", "echo out; echo err >&2; exit 3"])
        self.assertEqual((result.stdout, result.stderr, result.exit_code), (b"out\n", b"err\n", 3))
        hostname = exec_sync(a, ["hostname"])
        self.assertEqual((hostname.exit_code, hostname.stdout), (0, f"{WEB_HOSTNAME}\n".encode()), hostname.stderr)
        # A program that does not exist: runc makes ExecSync fail; a non-zero exit code is fine too.
        try:
            missing = exec_sync(a, ["/no/such/program"])
            self.assertNotEqual(missing.exit_code, 0)
        except grpc.RpcError as error:
            self.assertIn("/no/such/program", error.details())

    def test_09_exec_with_tty(self):
        # The command waits for a line on stdin, sent once "tty-ok" is seen: output written just before
        # an exec exits can be lost to a known containerd 1.6 race (runc shim, TTY), so nothing that
        # the test checks is written last.
        b = self.web().containers["b"]
        url = harness.client.Exec(pb.ExecRequest(
            container_id=b, cmd=["sh", "-c", "tty; echo tty-ok; read line; echo \"got $line\"; exit 7"],
            tty=True, stdin=True, stdout=True)).url
        stdout, stderr, exit_code = cri_stream.run(url, send_after=(b"tty-ok\r\n", b"ping\r"))
        self.assertRegex(stdout.decode(), r"^/dev/pts/\d+\r\ntty-ok\r\n")
        self.assertEqual((stderr, exit_code), (b"", 7))

    def test_10_container_logs(self):
        pod = self.web()
        status = container_status(pod.containers["b"])
        self.assertEqual(status.log_path, f"{pod.log_directory}/b_0.log")

        def entries():
            with open(status.log_path) as f:
                parsed = [LOG_LINE.match(line.rstrip("\n")) for line in f]
            self.assertTrue(all(parsed), f"lines in CRI log format in {status.log_path}")
            found = [(m.group(2), m.group(3), m.group(4)) for m in parsed]
            return found if len(found) >= 2 else None
        found = wait_for(entries, 20, f"two lines in {status.log_path}")
        self.assertCountEqual(found, [("stdout", "F", "cri-log-stdout"), ("stderr", "F", "cri-log-stderr")])

    def test_11_stats(self):
        pod = self.web()

        def figures(stats):
            return stats.memory.working_set_bytes.value, stats.cpu.usage_core_nano_seconds.value

        def stats_of_a():
            stats = harness.client.ContainerStats(pb.ContainerStatsRequest(container_id=a)).stats
            return stats if all(figures(stats)) else None

        a = pod.containers["a"]
        single = wait_for(stats_of_a, 20, "non-zero stats of container a")
        self.assertEqual(single.attributes.id, a)
        self.assertEqual(single.attributes.metadata.name, "a")
        listed = harness.client.ListContainerStats(pb.ListContainerStatsRequest(
            filter=pb.ContainerStatsFilter(pod_sandbox_id=pod.id))).stats
        by_name = {stats.attributes.metadata.name: figures(stats) for stats in listed}
        self.assertEqual(set(by_name), {"a", "b"})
        for name, (working_set, cpu) in by_name.items():
            self.assertGreater(working_set, 0, f"memory working set of {name}")
            self.assertGreater(cpu, 0, f"cpu usage of {name}")

    def test_12_restart_container(self):
        pod = self.web()
        old = pod.containers["b"]
        wrote = exec_sync(pod.containers["a"], ["sh", "-c", "echo kept > /shared/restart.txt"])
        self.assertEqual(wrote.exit_code, 0, wrote.stderr)
        harness.client.StopContainer(pb.StopContainerRequest(container_id=old, timeout=10))
        stopped = wait_for(lambda: (s := container_status(old)).state == pb.CONTAINER_EXITED and s, 30, "b EXITED")
        self.assertEqual(stopped.exit_code, 0, "the sleeper exits 0 on SIGTERM")
        new = pod.run_container("b", SLEEPER, attempt=1,
                                mounts=[pb.Mount(container_path="/shared", host_path=self.volumes()["shared"])])
        harness.client.RemoveContainer(pb.RemoveContainerRequest(container_id=old))
        read = exec_sync(new, ["cat", "/shared/restart.txt"])
        self.assertEqual((read.exit_code, read.stdout), (0, b"kept\n"), read.stderr)
        listed = harness.client.ListContainers(pb.ListContainersRequest(filter=pb.ContainerFilter(pod_sandbox_id=pod.id)))
        self.assertEqual(sorted((c.metadata.name, c.metadata.attempt, c.state) for c in listed.containers),
                         [("a", 0, pb.CONTAINER_RUNNING), ("b", 1, pb.CONTAINER_RUNNING)])
        if SWIFTKATA:
            self.assertEqual(len(host_state.qemu_pids(pod.id)), 1, "QEMU processes of the pod after the restart")

    def test_12b_mount_destinations_stay_inside_the_rootfs(self):
        # "../" in a destination and a symlink in the image (/escape-link -> ../../../../../..) both
        # resolve inside the container's root; a mount that escaped would not be visible in it.
        pod, volumes = self.web(), self.volumes()
        with open(f"{volumes['host']}/escape-probe.txt", "w") as f:
            f.write("probe\n")
        escaper = pod.run_container("escaper", SLEEPER, mounts=[
            pb.Mount(container_path="/../../../../dotdot-landed", host_path=volumes["host"], readonly=True),
            pb.Mount(container_path="/escape-link/link-landed", host_path=volumes["host"], readonly=True),
        ])
        try:
            for landed in ["/dotdot-landed", "/link-landed"]:
                read = exec_sync(escaper, ["cat", f"{landed}/escape-probe.txt"])
                self.assertEqual((read.exit_code, read.stdout), (0, b"probe\n"), f"{landed}: {read.stderr}")
        finally:
            pod.remove_container("escaper")

    def test_12c_attach_to_a_running_container(self):
        # kubectl attach: the container's own stdin and stdout, through containerd's streaming server.
        pod = self.web()
        attached = pod.run_container("attached", ["sh", "-c", "read line; echo \"attached: $line\""], stdin=True)
        try:
            url = harness.client.Attach(pb.AttachRequest(container_id=attached, stdin=True, stdout=True, stderr=True)).url
            stdout, _, _ = cri_stream.run(url, send_first=b"hello\n")
            self.assertIn(b"attached: hello", stdout)
            exited = wait_for(lambda: (s := container_status(attached)).state == pb.CONTAINER_EXITED and s, 30, "attached EXITED")
            self.assertEqual(exited.exit_code, 0)
        finally:
            pod.remove_container("attached")

    def test_12d_background_children_end_with_their_container(self):
        # In the pod's shared PID namespace a container's background child must not outlive it (runc
        # kills the container's cgroup when its init exits; a PID namespace of its own does the same).
        # containerd's CRI kills what is left on exit too; GuestNamespaceTests checks the agent alone.
        pod = self.web()
        orphaner = pod.run_container("orphaner", ["sh", "-c", "sleep 7777 & sleep 1"])
        try:
            wait_for(lambda: container_status(orphaner).state == pb.CONTAINER_EXITED, 30, "orphaner EXITED")
            ps = exec_sync(pod.containers["b"], ["ps", "-o", "args"]).stdout.decode()
            self.assertIn("sleep 2147483647", ps, "ps sees the pod's processes")
            self.assertNotIn("sleep 7777", ps, "the background child died with its container")
        finally:
            pod.remove_container("orphaner")

    def test_12e_pod_sysctls_of_the_ipc_namespace(self):
        # Kubernetes' namespaced sysctls reach the pod's IPC namespace (runc applies them to the
        # sandbox; its containers join it); one that is not namespaced is refused, naming it.
        pod = Pod("sysctls", sysctls={"kernel.shm_rmid_forced": "1", "fs.mqueue.msg_max": "100"})
        try:
            reader = pod.run_container("reader", ["sleep", "3600"])
            values = exec_sync(reader, ["cat", "/proc/sys/kernel/shm_rmid_forced", "/proc/sys/fs/mqueue/msg_max"])
            self.assertEqual(values.stdout.decode().split(), ["1", "100"], values.stderr.decode())
        finally:
            pod.remove()
        with self.assertRaises(grpc.RpcError) as refused:
            Pod("badsysctl", sysctls={"kernel.panic": "1"})
        self.assertIn("kernel.panic", refused.exception.details())

    def test_12f_network_administration_in_a_privileged_container(self):
        # What a privileged container (or one with NET_ADMIN) does under runc: bridges, veth pairs,
        # VLANs, and netfilter with the targets and matches service-mesh init containers use.
        pod = Pod("netadmin", privileged=True)
        try:
            admin = pod.run_container("admin", ["sleep", "3600"], privileged=True)
            links = exec_sync(admin, ["sh", "-c", "brctl addbr foobar && ip link set foobar up && "
                                                  "ip link add skv0 type veth peer name skv1 && ip -o link show"])
            self.assertEqual(links.exit_code, 0, links.stdout.decode() + links.stderr.decode())
            for name in ["foobar", "skv0"]:  # busybox ip names the veth peer itself
                self.assertIn(f" {name}", links.stdout.decode())
            tables = exec_sync(admin, ["cat", "/proc/net/ip_tables_targets", "/proc/net/ip_tables_matches", "/proc/net/ip6_tables_targets"])
            self.assertEqual(tables.exit_code, 0, tables.stderr.decode())
            for name in ["DNAT", "SNAT"] + (["REDIRECT", "MASQUERADE", "TPROXY", "owner", "multiport", "comment",
                                            "conntrack", "socket", "mark", "addrtype", "statistic", "set"] if SWIFTKATA else []):
                self.assertIn(name, tables.stdout.decode().split(), f"netfilter lacks {name}")
            if SWIFTKATA:
                # Links this host's own kernel lacks (runc shares it): VLAN, dummy and tun/tap.
                more = exec_sync(admin, ["sh", "-c", "ip link add link eth0 name eth0.5 type vlan id 5 && ip link add skd0 type dummy && "
                                                     "tunctl -t sktun0 >/dev/null && ip -o link show"])
                self.assertEqual(more.exit_code, 0, more.stdout.decode() + more.stderr.decode())
                for name in ["eth0.5", "skd0", "sktun0"]:
                    self.assertIn(f" {name}", more.stdout.decode())
        finally:
            pod.remove()

    def test_12g_host_ipc_and_pid_are_refused_clearly(self):
        # A VM has its own IPC and PID namespaces: sharing the node's is refused, naming it, rather
        # than silently giving the pod the VM's (runc does share them).
        if not SWIFTKATA:
            self.skipTest("runc shares the host's namespaces")
        for name, options, word in [("hostpid", {"pid": pb.NODE}, "hostPID"), ("hostipc", {"ipc": pb.NODE}, "hostIPC")]:
            with self.assertRaises(grpc.RpcError) as refused:
                Pod(name, **options)
            self.assertIn(word, refused.exception.details())

    def test_12h_the_vm_is_sized_for_the_pods_limits(self):
        # A container limited to 2 CPUs and 768 MiB gets them: the pod's VM is sized for them (here by
        # swiftkata's pod annotations, which the test configuration allows; containerd 1.7 passes the
        # pod's summed limits itself). Under runc the node's own CPUs and memory serve.
        limits = pb.LinuxContainerResources(cpu_period=100000, cpu_quota=200000, memory_limit_in_bytes=768 << 20)
        allocate = ["dd", "if=/dev/zero", "of=/dev/null", "bs=600M", "count=1"]
        sized = Pod("sized", annotations={"io.swiftkata.hypervisor.vcpus": "3", "io.swiftkata.hypervisor.memory_mib": "1280"})
        try:
            worker = sized.run_container("worker", ["sleep", "3600"], resources=limits)
            cpus = exec_sync(worker, ["nproc"])
            self.assertGreaterEqual(int(cpus.stdout.decode().strip()), 2, cpus.stderr.decode())
            if SWIFTKATA:
                self.assertEqual(cpus.stdout.decode().strip(), "3")
            allocated = exec_sync(worker, allocate)
            self.assertEqual(allocated.exit_code, 0, allocated.stderr.decode())
            if SWIFTKATA:
                # The VM is accounted in the pod's cgroup, where runc puts the pause process.
                qemu = host_state.qemu_pids(sized.id)
                self.assertEqual(len(qemu), 1)
                self.assertTrue(host_state.cgroup_of(qemu[0], "memory").endswith("/" + sized.id),
                                host_state.cgroup_of(qemu[0], "memory"))
        finally:
            sized.remove()
        # The shim tears the VM down after it answered Shutdown: the cgroups go moments later.
        wait_for(lambda: host_state.cgroups_named(sized.id) == [], 10, "the pod's cgroups removed with it")
        if SWIFTKATA:
            # A VM above the configured maximum is refused, naming the limit.
            with self.assertRaises(grpc.RpcError) as refused:
                Pod("toobig", annotations={"io.swiftkata.hypervisor.vcpus": "64"})
            self.assertIn("vCPUs", refused.exception.details())

    def test_12o_the_vm_grows_with_its_containers_limits_and_gives_memory_back(self):
        # No pod-level size (containerd 1.6 passes none): the VM boots at the base size and grows by
        # hotplug when a container's limits need more, then shrinks when they are lowered. Under runc
        # the node's own CPUs and memory serve, and the same checks hold.
        def limits(memory_mib):
            return pb.LinuxContainerResources(cpu_period=100000, cpu_quota=200000, memory_limit_in_bytes=memory_mib << 20)

        def guest_memory_mib(container):
            meminfo = exec_sync(container, ["cat", "/proc/meminfo"]).stdout.decode()
            return int(meminfo.split("MemTotal:")[1].split()[0]) >> 10

        def allocates(container, mebibytes):
            return exec_sync(container, ["dd", "if=/dev/zero", "of=/dev/null", f"bs={mebibytes}M", "count=1"], timeout=60).exit_code == 0

        pod = Pod("growing")
        try:
            worker = pod.run_container("worker", ["sleep", "3600"], resources=limits(768))
            cpus = exec_sync(worker, ["nproc"]).stdout.decode().strip()
            self.assertGreaterEqual(int(cpus), 2)
            if SWIFTKATA:
                self.assertEqual(cpus, "3")  # the base vCPU and two hot-added ones
                self.assertGreater(guest_memory_mib(worker), 768 + 128)
            self.assertTrue(allocates(worker, 600), "600 MiB within a 768 MiB limit")
            self.assertFalse(allocates(worker, 900), "900 MiB above a 768 MiB limit")

            harness.client.UpdateContainerResources(pb.UpdateContainerResourcesRequest(container_id=worker, linux=limits(1024)))
            self.assertTrue(allocates(worker, 900), "900 MiB once the limit is 1 GiB")
            if SWIFTKATA:
                grown = guest_memory_mib(worker)
                self.assertGreater(grown, 1024 + 128)
                # What the guest touched is host memory until it goes back. Page cache (a file read
                # through the shared file system) stays in use, unlike a finished process's pages.
                exec_sync(worker, ["dd", "if=/dev/zero", "of=/tmp/cache", "bs=1M", "count=400"], timeout=60)
                before = host_state.vm_pss_bytes(pod.id)

            harness.client.UpdateContainerResources(pb.UpdateContainerResourcesRequest(container_id=worker, linux=limits(128)))
            self.assertFalse(allocates(worker, 600), "600 MiB above a 128 MiB limit")
            if SWIFTKATA:
                # The VM shrank back towards the base plus 128 MiB, and the host got the memory back.
                wait_for(lambda: guest_memory_mib(worker) < grown - 512, 30, "the guest gave hot-plugged memory back")
                wait_for(lambda: host_state.vm_pss_bytes(pod.id) < before - (256 << 20), 30,
                         f"the VM's PSS (QEMU and virtiofsd) dropped by 256 MiB from {before >> 20} MiB")
                print(f"\n  VM PSS {before >> 20} MiB -> {host_state.vm_pss_bytes(pod.id) >> 20} MiB after the shrink",
                      file=sys.stderr)
        finally:
            pod.remove()

    def test_12p_pod_stats_are_the_vms_host_cost(self):
        # Pod-level stats (ListPodSandboxStats, what kubelet's summary reads) are the pod's cgroup on
        # the host, which kubelet names as the sandbox's cgroup parent: under runc the pause process
        # and the containers; with swiftkata the VM's QEMU and virtiofsd, which run there.
        parent = f"swiftkata-cri-pod{uuid.uuid4().hex[:12]}"
        pod = Pod("accounted", cgroup_parent=f"/{parent}")
        try:
            busy = pod.run_container("busy", ["sleep", "3600"])

            def pod_figures():
                listed = harness.client.ListPodSandboxStats(pb.ListPodSandboxStatsRequest(
                    filter=pb.PodSandboxStatsFilter(id=pod.id))).stats
                self.assertEqual([stats.attributes.id for stats in listed], [pod.id])
                return listed[0].linux.cpu.usage_core_nano_seconds.value, listed[0].linux.memory.working_set_bytes.value

            def qemu_cpu_ns():
                with open(f"/proc/{host_state.qemu_pids(pod.id)[0]}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
                return (int(fields[11]) + int(fields[12])) * 1_000_000_000 // os.sysconf("SC_CLK_TCK")

            pod_cpu, pod_memory = pod_figures()
            self.assertGreater(pod_cpu, 0)
            self.assertGreater(pod_memory, 0)
            if SWIFTKATA:
                # What the VM spends on a busy container is the pod's (a VM claimed from the warm pool
                # booted outside it: compare from now on). Guest memory: 100 MiB of page cache.
                exec_sync(busy, ["dd", "if=/dev/zero", "of=/tmp/cached", "bs=1M", "count=100"], timeout=60)
                grown = pod_figures()[1] - pod_memory
                self.assertGreater(grown, 64 << 20, f"the pod's memory grew by {grown >> 20} MiB for 100 MiB in the guest")
                qemu_before = qemu_cpu_ns()
                exec_sync(busy, ["dd", "if=/dev/zero", "of=/dev/null", "bs=64k", "count=20000"], timeout=60)
                qemu_spent, pod_spent = qemu_cpu_ns() - qemu_before, pod_figures()[0] - pod_cpu
                self.assertGreater(qemu_spent, 100_000_000, "the exec kept QEMU busy")
                self.assertGreater(pod_spent, qemu_spent * 8 // 10, f"pod CPU +{pod_spent} ns, QEMU's +{qemu_spent} ns")
        finally:
            pod.remove()
            remove_pod_cgroup(parent)

    def test_12q_a_pod_over_its_pod_level_memory_limit(self):
        # kubelet bounds a pod's cgroup by its containers' limits plus the RuntimeClass overhead. A pod
        # that outgrows it is OOM-killed by the host's kernel: under runc the allocating process;
        # with swiftkata the VM's QEMU, which runs in that cgroup. The pod's tasks then end within
        # seconds, the reason is in containerd's log, and removing the pod leaves nothing.
        parent = f"swiftkata-cri-pod{uuid.uuid4().hex[:12]}"
        pod = Pod("overgrown", cgroup_parent=f"/{parent}")
        try:
            limits = pb.LinuxContainerResources(memory_limit_in_bytes=512 << 20)
            worker = pod.run_container("worker", ["sleep", "3600"], resources=limits)
            memory = next(d for d in host_state.cgroups_named(parent) if "/memory/" in d)
            with open(f"{memory}/memory.usage_in_bytes") as f:
                usage = int(f.read())
            with open(f"{memory}/memory.limit_in_bytes", "w") as f:
                f.write(str(usage + (160 << 20)))
            allocated = exec_sync(worker, ["dd", "if=/dev/zero", "of=/dev/null", "bs=400M", "count=1"], timeout=60)
            self.assertNotEqual(allocated.exit_code, 0, "400 MiB fitted in a pod bounded 160 MiB above its use")
            if SWIFTKATA:
                wait_for(lambda: container_status(worker).state == pb.CONTAINER_EXITED, 30, "the worker ended with its VM")
                # The shim logs why once it has handled QEMU's end, which can follow the task's exit.
                def logged():
                    with open(f"{harness.directory}/containerd.log") as log:
                        return "pod VM stopped unexpectedly" in log.read()
                wait_for(logged, 10, "containerd's log saying the pod VM stopped unexpectedly")
        finally:
            pod.remove()
            remove_pod_cgroup(parent)

    def test_12r_a_block_volume_is_the_hosts_device(self):
        # Kubernetes' volumeDevices: a raw host block device at a path of the container's choosing.
        # The VM gets the host's device as a virtio-blk disk; what the container writes is on the
        # host's device, and the disk leaves the VM with the container. A device the host has
        # mounted is refused (runc would hand it over).
        def loop_device(name, filesystem=False):
            backing = f"{harness.volume_root}/{name}.img"
            with open(backing, "wb") as image:
                image.truncate(16 << 20)
            if filesystem:
                subprocess.run(["mkfs.ext4", "-q", "-F", backing], check=True)
            device = subprocess.run(["losetup", "--find", "--show", backing], capture_output=True, text=True, check=True).stdout.strip()
            cleanups.append(lambda: (subprocess.run(["losetup", "--detach", device]), os.unlink(backing)))
            return device

        cleanups = []
        pod = Pod("blockvolume")
        try:
            loop = loop_device("block-volume")
            device = pb.Device(container_path="/dev/xvdb", host_path=loop, permissions="rwm")
            container = pod.run_container("block", SLEEPER, devices=[device])
            wrote = exec_sync(container, ["sh", "-c", "printf written-in-the-pod | dd of=/dev/xvdb bs=512 seek=8 conv=notrunc,fsync"])
            self.assertEqual(wrote.exit_code, 0, wrote.stderr.decode())
            with open(loop, "rb") as host_device:
                host_device.seek(8 * 512)
                self.assertEqual(host_device.read(18), b"written-in-the-pod")
            if SWIFTKATA:
                domain = host_state.pod_domain(pod.id)
                disks = lambda: subprocess.run(["virsh", "-c", "qemu:///system", "domblklist", domain], capture_output=True, text=True).stdout
                self.assertIn(loop, disks())
            pod.remove_container("block")
            if SWIFTKATA:
                wait_for(lambda: loop not in disks(), 20, "the disk detached from the VM with its container")

                mounted = loop_device("mounted-volume", filesystem=True)
                mountpoint = f"{harness.volume_root}/mounted-volume"
                os.makedirs(mountpoint, exist_ok=True)
                subprocess.run(["mount", mounted, mountpoint], check=True)
                cleanups.insert(0, lambda: subprocess.run(["umount", mountpoint]))
                with self.assertRaises(grpc.RpcError) as refused:
                    pod.run_container("mounted-block", SLEEPER, devices=[pb.Device(container_path="/dev/xvdc", host_path=mounted, permissions="rwm")])
                self.assertIn("mounted", refused.exception.details())
        finally:
            pod.remove()
            for cleanup in cleanups:
                cleanup()

    def test_12i_host_to_container_propagation_carries_the_hosts_submounts(self):
        # A HostToContainer volume shows what is mounted below its source when the container starts
        # and what the host mounts there later (CRI requires the source to be on a shared or slave
        # mount); the container's removal leaves the host's mounts alone.
        root = f"{harness.volume_root}/propagation"
        os.makedirs(f"{root}/sub", exist_ok=True)
        subprocess.run(["mount", "--bind", root, root], check=True)
        try:
            subprocess.run(["mount", "--make-rshared", root], check=True)
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "swiftkata-propagation", f"{root}/sub"], check=True)
            with open(f"{root}/sub/seen", "w") as f:
                f.write("from a host submount\n")
            pod = self.client_pod()
            volume = pb.Mount(container_path="/data", host_path=root, propagation=pb.PROPAGATION_HOST_TO_CONTAINER)
            container = pod.run_container("propagation", SLEEPER, mounts=[volume])
            seen = exec_sync(container, ["cat", "/data/sub/seen"])
            self.assertEqual(seen.stdout.decode(), "from a host submount\n", seen.stderr.decode())
            # A mount the host makes later below the source (what HostToContainer is for).
            os.makedirs(f"{root}/later", exist_ok=True)
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "swiftkata-propagation-later", f"{root}/later"], check=True)
            with open(f"{root}/later/seen", "w") as f:
                f.write("from a later host mount\n")
            later = wait_for(lambda: exec_sync(container, ["cat", "/data/later/seen"]).stdout.decode(), 10, "the later mount in the pod")
            self.assertEqual(later, "from a later host mount\n")
            pod.remove_container("propagation")
            # The pod's copy of the volume goes with the container; the host's own mounts stay.
            mounted = host_state.mount_points()
            self.assertIn(f"{root}/sub", mounted)
            self.assertIn(f"{root}/later", mounted)
        finally:
            subprocess.run(["umount", "-R", "-l", root])

    def test_12j_a_debug_container_joins_its_targets_pid_namespace(self):
        # kubectl debug --target: an ephemeral container in the target's PID namespace sees the
        # target's processes and not its neighbour's (each container has its own PID namespace here).
        pod = Pod("debugged")
        try:
            target = pod.run_container("target", ["sleep", "1234"], pid=pb.CONTAINER)
            pod.run_container("neighbour", ["sleep", "5678"], pid=pb.CONTAINER)
            debug = pod.run_container("debug", ["sleep", "3600"], pid=pb.TARGET, target=target)
            seen = exec_sync(debug, ["ps", "-o", "args"])
            self.assertEqual(seen.exit_code, 0, seen.stderr.decode())
            self.assertIn("sleep 1234", seen.stdout.decode())
            self.assertNotIn("sleep 5678", seen.stdout.decode())
        finally:
            pod.remove()

    @unittest.skipUnless(SWIFTKATA, "swiftkata's operator tools")
    def test_12k_node_metrics_parse_and_describe_the_running_pods(self):
        # `swiftkata-ctl serve-metrics` as Prometheus scrapes it, parsed by the Prometheus client's own
        # text parser: node figures, and each running pod's VM, host processes, guest and agent calls.
        web, client = self.web(), self.client_pod()
        families = {family.name: family for family in text_string_to_metric_families(scrape_metrics())}

        def samples(name, **labels):
            return [sample for family in families.values() for sample in family.samples
                    if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())]

        def value(name, **labels):
            found = samples(name, **labels)
            self.assertEqual(len(found), 1, f"{name} {labels}: {found}")
            return found[0].value

        self.assertGreaterEqual(value("swiftkata_pods_running"), 2)
        self.assertEqual(value("swiftkata_pods_unreachable"), 0)
        self.assertGreaterEqual(value("swiftkata_pods_started_total"), 2)
        # "client" claimed the VM the pool booted after "web".
        self.assertGreaterEqual(value("swiftkata_warm_pool_hits_total"), 1)
        self.assertEqual(len(samples("swiftkata_boot_failures_total")), 5)
        for pod, claimed in ((web, "false"), (client, "true")):
            info = value("swiftkata_pod_info", pod=pod.id, namespace="k8s.io", warm_pool=claimed)
            self.assertEqual(info, 1)
            self.assertIn(samples("swiftkata_pod_info", pod=pod.id)[0].labels["accelerator"], ("kvm", "tcg"))
            self.assertGreater(value("swiftkata_pod_boot_seconds", pod=pod.id, phase="total"), 0)
            self.assertGreater(value("swiftkata_pod_process_pss_bytes", pod=pod.id, process="qemu"), 16 << 20)
            self.assertGreater(value("swiftkata_pod_process_rss_bytes", pod=pod.id, process="virtiofsd"), 0)
            self.assertGreater(value("swiftkata_pod_process_cpu_seconds_total", pod=pod.id, process="qemu"), 0)
            total = value("swiftkata_pod_guest_memory_total_bytes", pod=pod.id)
            self.assertGreater(total, 64 << 20)
            self.assertLessEqual(total, value("swiftkata_pod_memory_bytes", pod=pod.id))
            self.assertGreater(value("swiftkata_pod_guest_memory_used_bytes", pod=pod.id), 0)
            self.assertGreaterEqual(value("swiftkata_pod_agent_calls_total", pod=pod.id, method="CreateContainer"), 1)
            self.assertGreater(value("swiftkata_pod_agent_call_seconds_total", pod=pod.id, method="CreateContainer"), 0)
            # The sleepers' first lines reached containerd's logs.
            self.assertGreater(value("swiftkata_pod_output_bytes_total", pod=pod.id, stream="stdout"), 0)
        # Waiting calls are counted but never summed as latency.
        self.assertEqual(samples("swiftkata_pod_agent_call_seconds_total", pod=web.id, method="WaitProcess"), [])

    @unittest.skipUnless(SWIFTKATA, "swiftkata's operator tools")
    def test_12l_debug_console_is_a_shell_in_the_guest_root_with_a_tty(self):
        # `swiftkata-ctl console <pod>` on a terminal: a shell in the VM's own root (PID 1 is the
        # agent, busybox is there, no container's rootfs), with a TTY, ending with its exit status.
        web = self.web()
        output, status = run_console(web.id[:12], b"echo console-$((6*7)); tty; cat /proc/1/comm; exit 3\n")
        self.assertEqual(status, 3, output)
        self.assertIn("console-42", output)
        self.assertRegex(output, r"/dev/pts/\d+")
        self.assertIn("init", output)
        # The console's process is gone afterwards: the pod's containers run on, nothing else.
        listed = harness.client.ListContainers(pb.ListContainersRequest(filter=pb.ContainerFilter(pod_sandbox_id=web.id)))
        self.assertTrue(all(c.state == pb.CONTAINER_RUNNING for c in listed.containers))
        missing, status = run_console("no-such-pod", b"")
        self.assertEqual(status, 1)
        self.assertIn("no running pod no-such-pod", missing)

    @unittest.skipUnless(SWIFTKATA, "swiftkata's host check")
    def test_12m_swiftkata_check_asks_the_running_containerd_for_the_handler(self):
        # The handler as containerd's CRI plugin reports it (its verbose Status, as `crictl info`
        # reads it), not as a file says: with a configuration path that does not exist, it still passes.
        checks = host_checks("--containerd-config", "/nonexistent/containerd.toml")
        runtime = checks["containerd-runtime"]
        self.assertEqual(runtime["status"], "pass", runtime)
        self.assertIn("running containerd", runtime["detail"])
        self.assertEqual(checks["containerd-cri"]["status"], "pass", checks["containerd-cri"])

    @unittest.skipUnless(SWIFTKATA and os.path.exists("/dev/kvm"), "a host with /dev/kvm, under swiftkata")
    def test_12n_a_fresh_hosts_root_only_dev_kvm_is_fixed_by_the_install_step(self):
        # A fresh host where no udev ran: /dev/kvm is root:root 0600 when libvirtd starts, libvirt's
        # QEMU user cannot open it, and libvirt re-probes QEMU at every domain start (about 10 s per
        # pod under TCG). The install step (packaging/kvm-device.sh, which `make install` runs) must
        # fix it so that the next pod starts without a re-probe, and swiftkata-check must then pass.
        # No warm-pool VM may boot meanwhile (its start would re-probe too).
        wait_for(lambda: not booting_pool_vms(), 120, "the warm pool's refill")
        saved = os.stat("/dev/kvm")
        pods = []
        try:
            os.chown("/dev/kvm", 0, 0)
            os.chmod("/dev/kvm", 0o600)
            restart_libvirtd()
            # swiftkata-check sees the harm: libvirt re-probes QEMU at every lookup.
            self.assertEqual(host_check("libvirt-capabilities")["status"], "fail")
            # The harm, as a fresh host has it: the pod's domain start makes libvirt re-probe QEMU.
            # Pods sized apart from the pool boot domains of their own (they claim no pool VM).
            before = libvirt_capability_cache()
            began = time.monotonic()
            pods.append(Pod("fresh-host-before", annotations={"io.swiftkata.hypervisor.memory_mib": "320"}))
            slow = time.monotonic() - began
            self.assertNotEqual(libvirt_capability_cache(), before, "no re-probe with a root-only /dev/kvm: the test shows nothing")

            fixed = subprocess.run([f"{REPO_ROOT}/packaging/kvm-device.sh"], capture_output=True, text=True, timeout=120)
            self.assertEqual(fixed.returncode, 0, fixed.stderr)
            self.assertIn("/dev/kvm is now root:kvm 660", fixed.stdout)
            now = os.stat("/dev/kvm")
            self.assertEqual((now.st_gid, now.st_mode & 0o777), (grp.getgrnam("kvm").gr_gid, 0o660))
            self.assertEqual(host_check("kvm-device")["status"], "pass")
            self.assertEqual(host_check("libvirt-capabilities")["status"], "pass")

            capabilities = libvirt_capability_cache()
            began = time.monotonic()
            pods.append(Pod("fresh-host-after", annotations={"io.swiftkata.hypervisor.memory_mib": "320"}))
            fast = time.monotonic() - began
            self.assertEqual(libvirt_capability_cache(), capabilities,
                             f"libvirt re-probed QEMU for the pod after the fix (sandbox in {fast:.1f} s, {slow:.1f} s before it)")
            print(f"\n    sandbox start with /dev/kvm 0600: {slow:.1f} s; after kvm-device.sh: {fast:.1f} s", flush=True)
        finally:
            os.chown("/dev/kvm", saved.st_uid, saved.st_gid)
            os.chmod("/dev/kvm", saved.st_mode & 0o7777)
            for pod in pods:
                pod.remove()

    def test_13_stop_and_remove_leave_nothing(self):
        pods = [self.web(), self.client_pod()]
        for pod in pods:
            harness.client.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod.id))
            self.assertEqual(pod.status().state, pb.SANDBOX_NOTREADY)
            harness.client.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod.id))
        self.assertEqual(list(harness.client.ListPodSandbox(pb.ListPodSandboxRequest()).items), [])
        self.assertEqual(list(harness.client.ListContainers(pb.ListContainersRequest()).containers), [])
        if SWIFTKATA:
            # The warm pool outlives pods by design; its VMs go with the operator's drain-pool, once the
            # shims (which may still be booting a replacement) have exited.
            wait_for(lambda: not host_state.shim_pids(harness.socket), 30, "shims to exit")
            harness.drain_pool()
        try:
            wait_for(lambda: not harness.leftovers(), 30, "host clean after RemovePodSandbox")
        except AssertionError:
            self.fail("left behind:\n  " + "\n  ".join(harness.leftovers()))


if __name__ == "__main__":
    unittest.main(verbosity=2)
