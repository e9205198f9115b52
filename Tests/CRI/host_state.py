"""What pods may leave on the host, scoped to the pods and the containerd of one test run.

Each finding is a line naming the thing left behind. swiftkata names its libvirt domains
`swiftkata-<namespace>-<pod id>` (QEMU's command line holds `guest=<domain name>`) and keeps per-pod
state in `/run/swiftkata/pods/<first 16 hex digits of sha256("<namespace>/<pod id>")>` (see
Sources/Hypervisor/VMDescription.swift, Sources/Shim/PodLayout.swift). A pod that claimed a warm-pool
VM keeps that VM's name (`swiftkata_pool-<entry>`), written in the pod directory's `identity.json`.
"""
import hashlib
import json
import os
import subprocess

SWIFTKATA_STATE = "/run/swiftkata"
PODS_DIRECTORY = f"{SWIFTKATA_STATE}/pods"
POOL_DIRECTORY = f"{SWIFTKATA_STATE}/pool"
POOL_DOMAIN_PREFIX = "swiftkata_pool-"
CRI_NAMESPACE = "k8s.io"
LIBVIRT_LOGS = "/var/log/libvirt/qemu"
SHIM_SOCKETS = "/run/containerd/s"


def domain_name(pod_id, namespace=CRI_NAMESPACE):
    """`swiftkata-<namespace>-<pod id>-<16 hex digits of sha256("<namespace>/<pod id>")>`."""
    digest = hashlib.sha256(f"{namespace}/{pod_id}".encode()).hexdigest()[:16]
    return f"swiftkata-{namespace}-{pod_id}-{digest}"


def shim_socket(containerd_address, pod_id, namespace=CRI_NAMESPACE):
    """Where a pod's shim listens: containerd's socket directory, sha256("<address>/<namespace>/<pod id>")."""
    return f"{SHIM_SOCKETS}/{hashlib.sha256(f'{containerd_address}/{namespace}/{pod_id}'.encode()).hexdigest()}"


def libvirt_logs(domain_names):
    """libvirt's per-domain logs (`<name>.log`, `<name>-fs<N>-virtiofsd.log`) of these domains and of
    any warm-pool VM."""
    entries = os.listdir(LIBVIRT_LOGS) if os.path.isdir(LIBVIRT_LOGS) else []
    return [f"{LIBVIRT_LOGS}/{entry}" for entry in entries
            if entry.startswith(POOL_DOMAIN_PREFIX)
            or any(entry == f"{name}.log" or entry.startswith(f"{name}-fs") for name in domain_names)]


def pod_directory(pod_id, namespace=CRI_NAMESPACE):
    return f"{PODS_DIRECTORY}/{hashlib.sha256(f'{namespace}/{pod_id}'.encode()).hexdigest()[:16]}"


def pod_domain(pod_id, namespace=CRI_NAMESPACE):
    """The running pod's domain: a claimed warm-pool VM's name from its identity file, else its own."""
    try:
        with open(f"{pod_directory(pod_id, namespace)}/identity.json") as f:
            return json.load(f)["domainName"]
    except (OSError, ValueError, KeyError):
        return domain_name(pod_id, namespace)


def vm_pss_bytes(pod_id, namespace=CRI_NAMESPACE):
    """The pod VM's host memory: the PSS of its QEMU and of the virtiofsd serving its share. Guest
    pages virtiofsd has touched are split between the two in each one's PSS; the sum counts them once."""
    directory = pod_directory(pod_id, namespace)
    try:
        with open(f"{directory}/identity.json") as f:
            source = json.load(f).get("fileServerSource") or f"{directory}/"
    except (OSError, ValueError):
        source = f"{directory}/"
    servers = [pid for pid, _, command_line in processes() if "virtiofsd" in command_line and source in command_line]
    return sum(pss_bytes(pid) for pid in qemu_pids(pod_id, pod_domain(pod_id, namespace)) + servers)


def pool_entries():
    """Warm-pool VMs published and waiting: <pool>/<key>/<entry> directories (not `.booting-`)."""
    found = []
    for key in os.listdir(POOL_DIRECTORY) if os.path.isdir(POOL_DIRECTORY) else []:
        if key.startswith("."):
            continue
        found += [f"{POOL_DIRECTORY}/{key}/{entry}" for entry in os.listdir(f"{POOL_DIRECTORY}/{key}") if not entry.startswith(".")]
    return found


def processes():
    """[(pid, ppid, command line with spaces)] of every process."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                command_line = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if command_line:
            found.append((int(entry), ppid, command_line))
    return found


def qemu_pids(pod_id, domain=None):
    marker = f"guest={domain or pod_domain(pod_id)},"
    return [pid for pid, _, command_line in processes() if marker in command_line and "qemu" in command_line]


def pss_bytes(pid):
    """The process's proportional set size (smaps_rollup), bytes."""
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    return 0


def cgroup_of(pid, controller):
    """The cgroup of `pid` in the v1 hierarchy of `controller` ("" for the v2 one)."""
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f.read().splitlines():
            _, controllers, path = line.split(":", 2)
            if controller in controllers.split(","):
                return path
    return None


def cgroups_named(name):
    """Every cgroup directory called `name`, in every hierarchy (v1 controllers and v2)."""
    with open("/proc/self/mounts") as f:
        hierarchies = [line.split()[1] for line in f if line.split()[2] in ("cgroup", "cgroup2")]
    return [os.path.join(root, name) for hierarchy in hierarchies for root, dirs, _ in os.walk(hierarchy) if name in dirs]


def shim_pids(containerd_address, pod_id=None):
    """Shim processes (runc or swiftkata) serving our containerd; with pod_id, those started for it."""
    found = []
    for pid, _, command_line in processes():
        words = command_line.split()
        if not words or not os.path.basename(words[0]).startswith("containerd-shim"):
            continue
        if containerd_address not in words:
            continue
        if pod_id is not None and pod_id not in words:
            continue
        found.append(pid)
    return found


def descendants(pids):
    """The given pids and all their descendants."""
    children = {}
    for pid, ppid, _ in processes():
        children.setdefault(ppid, []).append(pid)
    result, queue = [], list(pids)
    while queue:
        pid = queue.pop()
        if pid in result:
            continue
        result.append(pid)
        queue.extend(children.get(pid, []))
    return result


def mount_points():
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 4:
                points.append(fields[4].replace("\\040", " "))
    return points


def mounts_under(directory):
    prefix = directory.rstrip("/") + "/"
    return [point for point in mount_points() if point == directory or point.startswith(prefix)]


def libvirt_domains():
    """Names of all libvirt domains (running or not); None when virsh cannot answer."""
    try:
        result = subprocess.run(["virsh", "-c", "qemu:///system", "list", "--all", "--name"],
                                capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def links(*arguments):
    """`ip -o link show ARGS` as (name, detail line) pairs."""
    result = subprocess.run(["ip", "-o", "-d", "link", "show", *arguments], capture_output=True, text=True)
    found = []
    for line in result.stdout.splitlines():
        parts = line.split(": ", 2)
        if len(parts) >= 2:
            found.append((parts[1].split("@")[0], line))
    return found


def leftovers(pod_ids, containerd_address, private_directory, netns_paths, bridge, ipam_directory,
              swiftkata=True, pod_domains=None):
    """Everything these pods (and the warm pool) left behind. Empty when clean. `pod_domains` maps
    pod ids to the domains they ran in (claimed warm-pool VMs have their own names)."""
    found = []
    pod_domains = pod_domains or {}
    if swiftkata:
        names = {domain_name(pod_id) for pod_id in pod_ids} | set(pod_domains.values())
        domains = libvirt_domains()
        if domains is None:
            found.append("virsh -c qemu:///system list --all --name failed")
        else:
            found += [f"libvirt domain {name}" for name in domains if name in names or name.startswith(POOL_DOMAIN_PREFIX)]
        found += [f"libvirt log {path}" for path in libvirt_logs(names)]
        found += [f"warm-pool VM directory {path}" for path in pool_entries()]
        for pod_id in pod_ids:
            found += [f"qemu pid {pid} (pod {pod_id[:12]})" for pid in qemu_pids(pod_id, pod_domains.get(pod_id, domain_name(pod_id)))]
            directory = pod_directory(pod_id)
            found += [f"mount {point}" for point in mounts_under(directory)]
            if os.path.exists(directory):
                found.append(f"pod directory {directory}")
            found += [f"virtiofsd pid {pid}" for pid, _, command_line in processes()
                      if "virtiofsd" in command_line and directory in command_line]
    found += [f"shim pid {pid}" for pid in shim_pids(containerd_address)]
    found += [f"container anchor pid {pid}" for pid, _, command_line in processes() if command_line.startswith("swiftkata-anchor ")]
    found += [f"shim socket {path}" for path in (shim_socket(containerd_address, pod_id) for pod_id in pod_ids) if os.path.exists(path)]
    found += [f"mount {point}" for point in mounts_under(private_directory)]
    for path in netns_paths:
        if os.path.exists(path):
            found.append(f"network namespace {path}")
        found += [f"mount {point}" for point in mount_points() if point == path]
    found += [f"tap device {name}" for name, line in links() if name.startswith("sk") and " tun " in line]
    found += [f"bridge port {name}" for name, _ in links("master", bridge)]
    if os.path.isdir(ipam_directory):
        for network in os.listdir(ipam_directory):
            for entry in os.listdir(f"{ipam_directory}/{network}"):
                if entry[0].isdigit() and not entry.startswith("last_reserved_ip"):
                    found.append(f"CNI IP reservation {ipam_directory}/{network}/{entry}")
    return found
