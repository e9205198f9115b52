/// A typical container spec (containerd's defaults with CRI's seccomp profile shape), decoded and
/// planned once while the agent idles: the first CreateContainer then skips the Swift
/// runtime's first-use costs on these types (metadata instantiation, protocol conformance lookups),
/// ≈ 15-20 ms of its 70 under TCG.
public enum SpecWarmUp {
    /// Decodes and plans `sample`; throws what a real spec would (a test keeps it valid). Its seccomp
    /// profile is decoded but not compiled: under TCG, the code libseccomp runs is enough to fill
    /// the 32 MiB translation cache once more (a boot and a first container translate ≈ 51 MiB),
    /// and the flush, with everything translated again after it, landed in the first container's
    /// run (start to exit 62 -> 110 ms; with a 96 MiB cache no flush and no slowdown).
    public static func run() throws(SpecError) {
        let spec = try OCISpec.decode(sample.utf8)
        _ = try SpawnPlanner.container(spec: spec, rootfs: "/run/warm-up/rootfs")
        if let process = spec.process { _ = try SpawnPlanner.exec(process: process) }
    }

    static let sample = """
        {"ociVersion":"1.1.0","process":{"terminal":false,"user":{"uid":0,"gid":0,"umask":18,"additionalGids":[10]},
        "args":["sh","-c","true"],"env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","HOSTNAME=warm-up"],
        "cwd":"/","capabilities":{"bounding":["CAP_CHOWN","CAP_KILL"],"effective":["CAP_CHOWN","CAP_KILL"],
        "permitted":["CAP_CHOWN","CAP_KILL"],"inheritable":[],"ambient":[]},
        "rlimits":[{"type":"RLIMIT_NOFILE","hard":1024,"soft":1024}],"noNewPrivileges":true,"oomScoreAdj":100,
        "consoleSize":{"height":24,"width":80}},
        "root":{"path":"rootfs","readonly":false},"hostname":"warm-up",
        "mounts":[{"destination":"/proc","type":"proc","source":"proc","options":["nosuid","noexec","nodev"]},
        {"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","strictatime","mode=755","size=65536k"]},
        {"destination":"/dev/pts","type":"devpts","source":"devpts","options":["nosuid","noexec","newinstance","ptmxmode=0666","mode=0620","gid=5"]},
        {"destination":"/dev/shm","type":"tmpfs","source":"shm","options":["nosuid","noexec","nodev","mode=1777","size=65536k"]},
        {"destination":"/dev/mqueue","type":"mqueue","source":"mqueue","options":["nosuid","noexec","nodev"]},
        {"destination":"/sys","type":"sysfs","source":"sysfs","options":["nosuid","noexec","nodev","ro"]},
        {"destination":"/run","type":"tmpfs","source":"tmpfs","options":["nosuid","strictatime","mode=755","size=65536k"]}],
        "annotations":{"io.kubernetes.cri.container-type":"container"},
        "linux":{"resources":{"devices":[{"allow":false,"access":"rwm"}],"memory":{"limit":134217728,"swap":134217728},
        "cpu":{"shares":1024,"quota":100000,"period":100000},"pids":{"limit":1024}},
        "cgroupsPath":"/warm-up","namespaces":[{"type":"pid"},{"type":"ipc"},{"type":"uts"},{"type":"mount"},{"type":"network"}],
        "seccomp":{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,"architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_X32"],
        "syscalls":[{"names":["read","write","openat","close","exit_group"],"action":"SCMP_ACT_ALLOW"},
        {"names":["personality"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":0,"op":"SCMP_CMP_EQ"}]},
        {"names":["clone"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":2114060288,"valueTwo":0,"op":"SCMP_CMP_MASKED_EQ"}]}]},
        "maskedPaths":["/proc/kcore","/sys/firmware"],"readonlyPaths":["/proc/sys","/proc/sysrq-trigger"],
        "sysctl":{"net.ipv4.ip_unprivileged_port_start":"0"},
        "devices":[{"path":"/dev/fuse","type":"c","major":10,"minor":229}]}}
        """
}
