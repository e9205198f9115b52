"""A private containerd with the CRI plugin, for the CRI end-to-end tests.

Its root, state, sockets, CNI configuration, volumes and logs live under /tmp/swiftkata-cri-<pid>;
it never touches /etc/containerd, /etc/cni or the system containerd. Runtime handlers: `runc`
(io.containerd.runc.v2) and `kata-runtime` (io.containerd.swiftkata.v2, found on containerd's PATH in
$SWIFTKATA_SHIM_DIR, default .build/debug). `stop()` removes pods, containerd, its shims (and
their processes), swiftkata VMs of its pods, mounts, network namespaces, the bridge and the directory,
also after failures; it is registered with atexit and runs on SIGTERM.
"""
import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import cri_subset_pb2 as pb
import host_state
from cri_client import CRIClient
from polling import wait_for

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUSYBOX_IMAGE = "docker.io/swiftkata/busybox:test"
PAUSE_IMAGE = "docker.io/swiftkata/pause:test"
PAUSE_COMMAND = "/bin/sleep 2147483647"
BRIDGE = "skcri0"
SUBNET = "10.99.0.0/24"
GATEWAY = "10.99.0.1"
NETWORK_NAME = "swiftkata-cri"


def _log(message):
    print(f"[cri-harness] {message}", file=sys.stderr, flush=True)


def _free_tcp_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _last_line(path):
    with open(path) as f:
        lines = [line.strip() for line in f if line.strip()]
    return lines[-1] if lines else None


def guest_paths():
    """(kernel, image) under test: $SWIFTKATA_KERNEL/$SWIFTKATA_IMAGE (set by make), else the last lines
    of .build/guest-kernel.path and .build/guest-image.path (`make guest`). The uncompressed vmlinux
    cached next to bzImage is preferred, as in Tests/ContainerdTests/PrivateContainerd.swift."""
    kernel, image = os.environ.get("SWIFTKATA_KERNEL"), os.environ.get("SWIFTKATA_IMAGE")
    try:
        kernel = kernel or _last_line(f"{REPO_ROOT}/.build/guest-kernel.path")
        image = image or _last_line(f"{REPO_ROOT}/.build/guest-image.path")
    except OSError:
        return None
    if not kernel or not image:
        return None
    vmlinux = os.path.join(os.path.dirname(kernel), "vmlinux")
    return (vmlinux if os.path.exists(vmlinux) else kernel), image


class PrivateContainerd:
    def __init__(self, runtime_handler):
        self.runtime_handler = runtime_handler
        self.swiftkata = runtime_handler != "runc"
        self.directory = f"/tmp/swiftkata-cri-{os.getpid()}"
        self.socket = f"{self.directory}/containerd.sock"
        self.cni_conf_dir = f"{self.directory}/cni"
        self.ipam_dir = f"{self.directory}/cni-ipam"
        self.log_root = f"{self.directory}/logs"
        self.volume_root = f"{self.directory}/volumes"
        # Relative to the repository root unless absolute.
        self.shim_dir = os.path.abspath(os.path.join(REPO_ROOT, os.environ.get("SWIFTKATA_SHIM_DIR", ".build/debug")))
        self.process = None
        self.client = None
        self.pod_ids = []
        # pod id -> the libvirt domain it runs in (a claimed warm-pool VM keeps its own name)
        self.pod_domains = {}
        self.netns_paths = []
        self._stopped = False

    # --- start ----------------------------------------------------------------------------------

    @classmethod
    def started(cls, runtime_handler):
        """A running instance (a test module's); what a failed start made is removed again."""
        harness = cls(runtime_handler)
        try:
            harness.start()
        except BaseException:
            harness.stop()
            raise
        return harness

    def start(self):
        atexit.register(self.stop)
        # Like Ctrl-C: unittest stops, tearDownModule and atexit clean up.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        if self.swiftkata and not os.access(f"{self.shim_dir}/containerd-shim-swiftkata-v2", os.X_OK):
            raise RuntimeError(f"no containerd-shim-swiftkata-v2 in {self.shim_dir} (build it, or set SWIFTKATA_SHIM_DIR)")
        if os.path.exists(self.directory):
            raise RuntimeError(f"{self.directory} exists already")
        for directory in (self.directory, self.cni_conf_dir, self.log_root, self.volume_root):
            os.makedirs(directory, exist_ok=True)
        self._write_configuration()
        images = self._build_images()
        environment = {
            "PATH": f"{self.shim_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "SWIFTKATA_CONFIG": f"{self.directory}/configuration.toml",
            "HOME": os.environ.get("HOME", "/root"),
        }
        log = open(f"{self.directory}/containerd.log", "wb")
        self.process = subprocess.Popen(
            ["/usr/bin/containerd", "--config", f"{self.directory}/containerd.toml", "--log-level", "debug"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=environment, start_new_session=True)
        log.close()
        wait_for(lambda: os.path.exists(self.socket) or self.process.poll() is not None, 30, "containerd socket")
        if self.process.poll() is not None:
            raise RuntimeError(f"containerd exited ({self.process.returncode}): {self.log_tail()}")
        self.client = CRIClient(self.socket)
        self.client.wait_ready(timeout=30)
        for path in images:
            self.ctr("images", "import", path)
        wait_for(self._cri_ready, 30, "CRI RuntimeReady and NetworkReady")
        for image in (BUSYBOX_IMAGE, PAUSE_IMAGE):
            wait_for(lambda: self.client.ImageStatus(pb.ImageStatusRequest(image=pb.ImageSpec(image=image))).image.id,
                     30, f"CRI sees image {image}")
        return self

    def _write_configuration(self):
        d = self.directory
        containerd_toml = f"""version = 2
root = "{d}/root"
state = "{d}/state"
[grpc]
  address = "{self.socket}"
[ttrpc]
  address = "{self.socket}.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "{_free_tcp_port()}"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "{d}/runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.kata-runtime]
      runtime_type = "io.containerd.swiftkata.v2"
      pod_annotations = ["io.swiftkata.*"]
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{self.cni_conf_dir}"
    max_conf_num = 1
"""
        # containerd adds the loopback interface itself (the `loopback` plugin from bin_dir).
        conflist = {
            "cniVersion": "1.0.0",
            "name": NETWORK_NAME,
            "plugins": [
                {
                    "type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": False, "hairpinMode": True,
                    "ipam": {"type": "host-local", "ranges": [[{"subnet": SUBNET, "gateway": GATEWAY}]],
                             "routes": [{"dst": "0.0.0.0/0"}], "dataDir": self.ipam_dir},
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        }
        with open(f"{d}/containerd.toml", "w") as f:
            f.write(containerd_toml)
        with open(f"{self.cni_conf_dir}/10-{NETWORK_NAME}.conflist", "w") as f:
            json.dump(conflist, f, indent=2)
        guest = guest_paths()
        if self.swiftkata and guest is None:
            raise RuntimeError("no guest kernel/image: set SWIFTKATA_KERNEL and SWIFTKATA_IMAGE or run `make guest`")
        with open(f"{d}/configuration.toml", "w") as f:
            if guest:
                # Pods may size their VM with io.swiftkata.hypervisor.* annotations (containerd 1.6
                # passes no sandbox resources).
                f.write(f'[hypervisor]\nkernel = "{guest[0]}"\nimage = "{guest[1]}"\n'
                        'enable_annotations = ["vcpus", "memory_mib"]\n\n')
            # A warm pool of one: the first pod boots its VM, the next ones claim VMs booted ahead.
            # The operators' debug console is on, so test_12k can open it (off by default).
            f.write("[agent]\ndebug_console = true\n\n[runtime]\ndebug = true\n\n[pool]\nsize = 1\n")

    def _build_images(self):
        """The test image (busybox, `sh`) and the pause image (busybox sleeping forever), built in parallel
        by scripts/make-busybox-image.sh."""
        script = f"{REPO_ROOT}/scripts/make-busybox-image.sh"
        jobs = {
            f"{self.directory}/busybox.tar": [script, f"{self.directory}/busybox.tar", BUSYBOX_IMAGE],
            f"{self.directory}/pause.tar": [script, f"{self.directory}/pause.tar", PAUSE_IMAGE, *PAUSE_COMMAND.split()],
        }
        running = {path: subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                   for path, command in jobs.items()}
        for path, process in running.items():
            output, _ = process.communicate(timeout=120)
            if process.returncode != 0:
                raise RuntimeError(f"building {path}: {output.decode(errors='replace')}")
        return list(jobs)

    def _cri_ready(self):
        conditions = self.client.Status(pb.StatusRequest()).status.conditions
        return {c.type for c in conditions if c.status} >= {"RuntimeReady", "NetworkReady"}

    def ctr(self, *arguments, timeout=120):
        result = subprocess.run(["/usr/bin/ctr", "-a", self.socket, "-n", host_state.CRI_NAMESPACE, *arguments],
                                capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"ctr {' '.join(arguments)}: {result.stdout}{result.stderr}")
        return result.stdout

    def log_tail(self, lines=30):
        try:
            with open(f"{self.directory}/containerd.log", errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    # --- bookkeeping ----------------------------------------------------------------------------

    def track_pod(self, pod_id):
        """Remembers a pod (and its network namespace) so that stop() can clean up after it even when
        containerd is gone."""
        if pod_id not in self.pod_ids:
            self.pod_ids.append(pod_id)
        if self.swiftkata:
            self.pod_domains[pod_id] = host_state.pod_domain(pod_id)
        path = self.netns_path(pod_id)
        if path and path not in self.netns_paths:
            self.netns_paths.append(path)

    def netns_path(self, pod_id):
        """The pod's network namespace path, from PodSandboxStatus's verbose info."""
        response = self.client.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=pod_id, verbose=True))
        info = json.loads(response.info.get("info", "{}"))
        for namespace in info.get("runtimeSpec", {}).get("linux", {}).get("namespaces", []):
            if namespace.get("type") == "network" and namespace.get("path"):
                return namespace["path"]
        return None

    def leftovers(self):
        return host_state.leftovers(self.pod_ids, self.socket, self.directory, self.netns_paths, BRIDGE,
                                    self.ipam_dir, swiftkata=self.swiftkata, pod_domains=self.pod_domains)

    def drain_pool(self):
        """`containerd-shim-swiftkata-v2 drain-pool` with this run's configuration: destroys the warm
        VMs that no pod claimed (the operator's command; `make uninstall` runs it too)."""
        result = subprocess.run([f"{self.shim_dir}/containerd-shim-swiftkata-v2", "drain-pool"],
                                env=dict(os.environ, SWIFTKATA_CONFIG=f"{self.directory}/configuration.toml"),
                                capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"drain-pool: {result.stdout}{result.stderr}")
        return result.stdout

    # --- stop -----------------------------------------------------------------------------------

    def stop(self):
        """Removes everything this instance made. Idempotent; best effort at every step."""
        if self._stopped:
            return
        self._stopped = True
        if self.client is not None and self.process is not None and self.process.poll() is None:
            try:
                pods = self.client.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=30).items
                for pod in pods:
                    if pod.id not in self.pod_ids:
                        self.pod_ids.append(pod.id)
                for pod in pods:
                    try:
                        self.client.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod.id), timeout=60)
                        self.client.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod.id), timeout=60)
                    except Exception as error:  # noqa: BLE001
                        _log(f"removing pod {pod.id[:12]}: {error}")
            except Exception as error:  # noqa: BLE001
                _log(f"listing pods: {error}")
            # Shims exit on their own once their pod is gone; give them the chance.
            try:
                wait_for(lambda: not host_state.shim_pids(self.socket), 15, "shims to exit")
            except AssertionError as error:
                _log(str(error))
        if self.client is not None:
            self.client.close()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        # Shims of this containerd, and what they started (runc containers), by pid.
        stray = host_state.descendants(host_state.shim_pids(self.socket))
        for pid in stray:
            _log(f"killing leftover pid {pid}")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.swiftkata:
            try:
                self.drain_pool()
            except (RuntimeError, OSError, subprocess.TimeoutExpired) as error:
                _log(str(error))
            domains = host_state.libvirt_domains() or []
            for pod_id in self.pod_ids:
                for name in {host_state.domain_name(pod_id), self.pod_domains.get(pod_id)} & set(domains):
                    _log(f"destroying domain {name}")
                    subprocess.run(["virsh", "-c", "qemu:///system", "destroy", name], capture_output=True, timeout=60)
        pod_directories = [host_state.pod_directory(pod_id) for pod_id in self.pod_ids] if self.swiftkata else []
        for directory in [self.directory, *pod_directories]:
            self._unmount_all(directory)
        for path in self.netns_paths:
            if os.path.exists(path):
                _log(f"removing network namespace {path}")
                self._unmount(path)
                try:
                    os.remove(path)
                except OSError as error:
                    _log(f"removing {path}: {error}")
        for directory in pod_directories:
            if os.path.isdir(directory) and not host_state.mounts_under(directory):
                _log(f"removing {directory}")
                shutil.rmtree(directory, ignore_errors=True)
        if any(name == BRIDGE for name, _ in host_state.links()) and not host_state.links("master", BRIDGE):
            subprocess.run(["ip", "link", "delete", BRIDGE], capture_output=True)
        copy = os.environ.get("CRI_LOG_COPY")
        if copy and os.path.exists(f"{self.directory}/containerd.log"):
            shutil.copyfile(f"{self.directory}/containerd.log", copy)
        if host_state.mounts_under(self.directory):
            _log(f"leaving {self.directory}: mounts remain under it")
        else:
            shutil.rmtree(self.directory, ignore_errors=True)

    @staticmethod
    def _unmount(path):
        if subprocess.run(["umount", path], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", path], capture_output=True)

    def _unmount_all(self, directory):
        for _ in range(5):
            points = sorted(set(host_state.mounts_under(directory)), key=len, reverse=True)
            if not points:
                return
            for point in points:
                _log(f"unmounting {point}")
                self._unmount(point)
