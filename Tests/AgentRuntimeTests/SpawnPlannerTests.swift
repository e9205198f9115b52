import AgentRuntime
import Testing

@Suite("OCI spec → spawn plan")
struct SpawnPlannerTests {
    /// A spec shaped like containerd's default (`ctr run`) config.json.
    static let containerdDefault = #"""
        {
          "ociVersion": "1.0.2-dev",
          "process": {
            "user": {"uid": 1000, "gid": 1000, "additionalGids": [10, 20]},
            "args": ["sh", "-c", "echo hi"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/work",
            "capabilities": {
              "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
              "effective": ["CAP_CHOWN", "CAP_KILL"],
              "permitted": ["CAP_CHOWN", "CAP_KILL"]
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 512}],
            "noNewPrivileges": true,
            "oomScoreAdj": 100
          },
          "root": {"path": "rootfs", "readonly": true},
          "hostname": "web-1",
          "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro", "nosuid", "noexec", "nodev"]},
            {"destination": "/etc/hosts", "type": "bind", "source": "/run/swiftkata/shared/c1/hosts", "options": ["rbind", "rprivate", "ro"]}
          ],
          "linux": {
            "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "network"}],
            "maskedPaths": ["/proc/kcore", "/sys/firmware"],
            "readonlyPaths": ["/proc/sys"],
            "resources": {"memory": {"limit": 67108864}, "pids": {"limit": 64}}
          },
          "unknownField": {"ignored": true}
        }
        """#

    @Test func containerdDefaultSpecTranslates() throws {
        let spec = try OCISpec.decode(Array(Self.containerdDefault.utf8))
        let plan = try SpawnPlanner.container(spec: spec, rootfs: "/run/swiftkata/shared/c1/rootfs")
        #expect(plan.argv == ["sh", "-c", "echo hi"])
        #expect(plan.cwd == "/work")
        #expect(plan.uid == 1000 && plan.gid == 1000 && plan.additionalGids == [10, 20])
        #expect(plan.capabilities.bounding == (1 << 0) | (1 << 5) | (1 << 10))
        #expect(plan.capabilities.effective == (1 << 0) | (1 << 5))
        #expect(plan.capabilities.ambient == 0)
        #expect(plan.rlimits == [.init(resource: 7, soft: 512, hard: 1024)])
        #expect(plan.noNewPrivileges)
        #expect(plan.oomScoreAdj == 100)
        #expect(plan.rootfsReadonly)
        #expect(plan.hostname == "web-1")
        #expect(plan.createDefaultDevices)
        #expect(plan.maskedPaths == ["/proc/kcore", "/sys/firmware"])
        #expect(plan.readonlyPaths == ["/proc/sys"])
        // mount | pid | uts | ipc; the network namespace stays the VM's (shared by the pod).
        #expect(plan.cloneFlags == 0x0002_0000 | 0x2000_0000 | 0x0400_0000 | 0x0800_0000)
    }

    @Test func mountOptionsBecomeFlagsPropagationAndData() throws {
        let spec = try OCISpec.decode(Array(Self.containerdDefault.utf8))
        let plan = try SpawnPlanner.container(spec: spec, rootfs: "/r")
        let proc = plan.mounts[0]
        #expect(proc.type == "proc" && proc.flags == 2 | 8 | 4 && proc.data == nil)
        let dev = plan.mounts[1]
        #expect(dev.flags == 2 | (1 << 24))
        #expect(dev.data == "mode=755,size=65536k")
        #expect(plan.mounts[2].type == "cgroup2")
        let hosts = plan.mounts[3]
        #expect(hosts.type == nil)
        #expect(hosts.flags == 4096 | 16384 | 1)
        #expect(hosts.propagation == (1 << 18) | 16384)
    }

    /// Pod sysctls: the IPC- and UTS-namespaced ones are written in the container's namespaces; net.* is
    /// the VM's (applied at sandbox creation); anything else is refused naming the key, as runc does.
    @Test func namespacedSysctlsOnly() throws {
        let spec = try OCISpec.decode(
            Array(
                #"""
                {"process": {"args": ["sh"]}, "linux": {"sysctl": {"kernel.shm_rmid_forced": "1", "fs.mqueue.msg_max": "100",
                 "net.ipv4.ip_forward": "1", "kernel.sem": "250 32000 32 128"}}}
                """#.utf8))
        let plan = try SpawnPlanner.container(spec: spec, rootfs: "/r")
        #expect(plan.sysctls.map(\.key) == ["fs.mqueue.msg_max", "kernel.sem", "kernel.shm_rmid_forced"])
        #expect(plan.sysctls.first?.value == "100")
        // Values as JSON string bodies ("1\\n2" is a newline once decoded).
        for (key, value) in [("kernel.panic", "1"), ("vm.overcommit_memory", "1"), ("kernel.shm..x", "1"), ("kernel.msgmax", "1\\n2")] {
            let bad = try OCISpec.decode(Array(#"{"process": {"args": ["sh"]}, "linux": {"sysctl": {"\#(key)": "\#(value)"}}}"#.utf8))
            let error = #expect(throws: SpecError.self) { try SpawnPlanner.container(spec: bad, rootfs: "/r") }
            #expect(error?.description.contains(key) == true, "\(error?.description ?? "")")
        }
    }

    /// A privileged container's device list: character and block nodes below /dev only, never a path
    /// that climbs out; the spawner binds the guest's node when its numbers match.
    @Test func specDevicesBelowDevOnly() throws {
        let spec = try OCISpec.decode(
            Array(
                #"""
                {"process": {"args": ["sh"]}, "linux": {"devices": [
                  {"path": "/dev/net/tun", "type": "c", "major": 10, "minor": 200},
                  {"path": "/dev/sda", "type": "b", "major": 8, "minor": 0},
                  {"path": "/dev/../etc/shadow", "type": "c", "major": 1, "minor": 3},
                  {"path": "/etc/x", "type": "c", "major": 1, "minor": 3},
                  {"path": "/dev/fifo", "type": "p"}]}}
                """#.utf8))
        let plan = try SpawnPlanner.container(spec: spec, rootfs: "/r")
        #expect(plan.devices.map(\.path) == ["net/tun", "sda"])
        #expect(plan.devices.map(\.character) == [true, false] && plan.devices.map(\.major) == [10, 8] && plan.devices.map(\.minor) == [200, 0])
    }

    /// runc's `rro`: read-only down to every submount (the spawner's recursive mount_setattr).
    @Test func rroIsARecursiveReadOnlyBind() throws {
        let spec = try OCISpec.decode(
            Array(#"{"process": {"args": ["sh"]}, "mounts": [{"destination": "/v", "type": "bind", "source": "/s", "options": ["bind", "rro"]}]}"#.utf8))
        let volume = try SpawnPlanner.container(spec: spec, rootfs: "/r").mounts[0]
        #expect(volume.flags == 4096 | 16384 | 1)
        #expect(volume.data == nil)
    }

    @Test(arguments: [
        (#"{"process": {"args": []}}"#, "process.args: missing or empty"),
        (#"{"process": {"args": ["sh"], "cwd": "work"}}"#, "process.cwd: work is not absolute"),
        (#"{"process": {"args": ["sh"], "env": ["NOEQUALS"]}}"#, "process.env: \"NOEQUALS\" is not NAME=value"),
        (#"{"process": {"args": ["sh"], "capabilities": {"bounding": ["CAP_FLY"]}}}"#, "process.capabilities.bounding: unknown capability CAP_FLY"),
        (#"{"process": {"args": ["sh"], "rlimits": [{"type": "RLIMIT_BOGUS", "hard": 1, "soft": 1}]}}"#, "process.rlimits: unknown rlimit RLIMIT_BOGUS"),
        (
            #"{"process": {"args": ["sh"], "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1, "soft": 2}]}}"#,
            "process.rlimits: RLIMIT_NOFILE soft limit 2 exceeds hard limit 1"
        ),
        (#"{"process": {"args": ["sh"], "oomScoreAdj": 5000}}"#, "process.oomScoreAdj: 5000 is outside -1000...1000"),
        (#"{"process": {"args": ["sh"]}, "mounts": [{"destination": "relative", "type": "tmpfs"}]}"#, "mounts[0].destination: relative is not absolute"),
        (#"{"process": {"args": ["sh"]}, "mounts": [{"destination": "/x", "type": "bind"}]}"#, "mounts[0].source: missing for the bind mount of /x"),
        (
            #"{"process": {"args": ["sh"]}, "mounts": [{"destination": "/x", "type": "bind", "source": "/s", "options": ["rbind", "readonly"]}]}"#,
            "mounts[0].options: unknown option \"readonly\" for the bind mount of /x"
        ),
        (
            #"{"process": {"args": ["sh"]}, "linux": {"namespaces": [{"type": "user"}]}}"#,
            "linux.namespaces: not supported: user namespaces (the VM is the isolation boundary)"
        ),
        (#"{"process": {"args": ["sh"]}, "linux": {"maskedPaths": ["proc/kcore"]}}"#, "linux.maskedPaths: proc/kcore is not absolute"),
        (#"{"hostname": "x"}"#, "process: missing"),
    ])
    func badSpecsAreRejectedNamingTheField(_ json: String, _ message: String) throws {
        let spec = try OCISpec.decode(Array(json.utf8))
        let error = #expect(throws: SpecError.self) { try SpawnPlanner.container(spec: spec, rootfs: "/r") }
        #expect(error?.description == message)
    }

    static func spec(namespaces: String, hostname: String? = nil) throws -> OCISpec {
        let host = hostname.map { #", "hostname": "\#($0)""# } ?? ""
        return try OCISpec.decode(Array(#"{"process": {"args": ["sh"]}, "linux": {"namespaces": [\#(namespaces)]}\#(host)}"#.utf8))
    }

    static let mount: UInt = 0x0002_0000, uts: UInt = 0x0400_0000, ipc: UInt = 0x0800_0000, pid: UInt = 0x2000_0000

    @Test func utsAndIpcWithAPathAreJoinedInsteadOfCreated() throws {
        let spec = try Self.spec(
            namespaces: #"""
                {"type": "pid"}, {"type": "ipc", "path": "/proc/42/ns/ipc"}, {"type": "uts", "path": "/proc/42/ns/uts"},
                {"type": "mount"}, {"type": "network", "path": "/var/run/netns/cni-1234"}
                """#, hostname: "")
        let plan = try SpawnPlanner.container(spec: spec, rootfs: "/r")
        #expect(plan.cloneFlags == Self.mount | Self.pid)
        #expect(plan.joinNamespaces == [NamespaceJoin(kind: .ipc, pid: 42), NamespaceJoin(kind: .uts, pid: 42)])
        #expect(plan.joinNamespaces.map(\.path) == ["/proc/42/ns/ipc", "/proc/42/ns/uts"])
        #expect(plan.joinNamespaces.map(\.cloneFlag) == [Self.ipc, Self.uts])
        // An empty hostname keeps the shared namespace's (CRI sets it on the sandbox only).
        #expect(plan.hostname == nil)
    }

    @Test func pidWithAPathIsJoinedAndAnEmptyPathMeansNew() throws {
        let spec = try Self.spec(namespaces: #"{"type": "pid", "path": "/proc/4194304/ns/pid"}, {"type": "uts", "path": ""}"#, hostname: "web")
        let plan = try SpawnPlanner.container(spec: spec, rootfs: "/r")
        #expect(plan.cloneFlags == Self.mount | Self.uts | Self.ipc)
        #expect(plan.joinNamespaces == [NamespaceJoin(kind: .pid, pid: 4_194_304)])
        #expect(plan.hostname == "web")
    }

    @Test(arguments: [
        (
            #"{"type": "uts", "path": "/proc/42/ns/ipc"}"#,
            #"linux.namespaces[0].path: "/proc/42/ns/ipc" is not /proc/<pid>/ns/uts (the pid of a container's init in this pod)"#
        ),
        (
            #"{"type": "uts", "path": "/proc/self/ns/uts"}"#,
            #"linux.namespaces[0].path: "/proc/self/ns/uts" is not /proc/<pid>/ns/uts (the pid of a container's init in this pod)"#
        ),
        (
            #"{"type": "ipc", "path": "/proc/042/ns/ipc"}"#,
            #"linux.namespaces[0].path: "/proc/042/ns/ipc" is not /proc/<pid>/ns/ipc (the pid of a container's init in this pod)"#
        ),
        (
            #"{"type": "ipc", "path": "/proc/0/ns/ipc"}"#,
            #"linux.namespaces[0].path: "/proc/0/ns/ipc" is not /proc/<pid>/ns/ipc (the pid of a container's init in this pod)"#
        ),
        (
            #"{"type": "ipc", "path": "/proc/+4/ns/ipc"}"#,
            #"linux.namespaces[0].path: "/proc/+4/ns/ipc" is not /proc/<pid>/ns/ipc (the pid of a container's init in this pod)"#
        ),
        (
            #"{"type": "pid", "path": "/proc/4194305/ns/pid"}"#,
            #"linux.namespaces[0].path: "/proc/4194305/ns/pid" is not /proc/<pid>/ns/pid (the pid of a container's init in this pod)"#
        ),
        (
            #"{"type": "uts", "path": "/proc/42/ns/uts/"}"#,
            #"linux.namespaces[0].path: "/proc/42/ns/uts/" is not /proc/<pid>/ns/uts (the pid of a container's init in this pod)"#
        ),
        (
            #"{"type": "uts", "path": "/proc/42/../1/ns/uts"}"#,
            #"linux.namespaces[0].path: "/proc/42/../1/ns/uts" is not /proc/<pid>/ns/uts (the pid of a container's init in this pod)"#
        ),
        (
            #"{"type": "uts", "path": "//proc/42/ns/uts"}"#,
            #"linux.namespaces[0].path: "//proc/42/ns/uts" is not /proc/<pid>/ns/uts (the pid of a container's init in this pod)"#
        ),
        (
            #"{"type": "uts", "path": "/var/run/utsns/pod"}"#,
            #"linux.namespaces[0].path: "/var/run/utsns/pod" is not /proc/<pid>/ns/uts (the pid of a container's init in this pod)"#
        ),
        (
            #"{"type": "pid"}, {"type": "mount", "path": "/proc/42/ns/mnt"}"#,
            "linux.namespaces[1].path: not supported: joining another mount namespace (only uts, ipc and pid can be shared)"
        ),
        (
            #"{"type": "cgroup", "path": "/proc/42/ns/cgroup"}"#,
            "linux.namespaces[0].path: not supported: joining another cgroup namespace (only uts, ipc and pid can be shared)"
        ),
        (#"{"type": "uts"}, {"type": "uts", "path": "/proc/42/ns/uts"}"#, "linux.namespaces: uts is listed twice"),
        (#"{"type": "time"}"#, "linux.namespaces: unknown namespace type time"),
    ])
    func badNamespacePathsAreRejected(_ namespaces: String, _ message: String) throws {
        let spec = try Self.spec(namespaces: namespaces)
        let error = #expect(throws: SpecError.self) { try SpawnPlanner.container(spec: spec, rootfs: "/r") }
        #expect(error?.description == message)
    }

    @Test func malformedJSONIsAClearError() {
        let error = #expect(throws: SpecError.self) { try OCISpec.decode(Array("{\"process\": ".utf8)) }
        #expect(error?.description.hasPrefix("config.json does not decode") == true)
    }

    @Test func execProcessUsesItsOwnUserAndTerminal() throws {
        let process = try OCIProcess.decode(Array(#"{"args": ["ls"], "terminal": true, "user": {"uid": 5, "gid": 6}}"#.utf8))
        let plan = try SpawnPlanner.exec(process: process)
        #expect(plan.terminal && plan.uid == 5 && plan.gid == 6)
        #expect(plan.cloneFlags == 0 && plan.rootfs == nil)
    }

    @Test func resourcesDecode() throws {
        let resources = try OCIResources.decode(
            Array(#"{"memory": {"limit": 1048576}, "cpu": {"quota": 50000, "period": 100000}, "pids": {"limit": 10}}"#.utf8))
        #expect(resources.memory?.limit == 1_048_576)
        #expect(resources.cpu?.quota == 50_000)
        #expect(resources.pids?.limit == 10)
    }
}
