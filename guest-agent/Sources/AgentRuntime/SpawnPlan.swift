/// Everything the C spawner needs to start one process, derived from an OCI spec and validated.
public struct SpawnPlan: Sendable, Equatable {
    public struct Sysctl: Sendable, Equatable {
        public var key: String
        public var value: String
    }

    public struct MountStep: Sendable, Equatable {
        public var source: String?
        public var destination: String
        /// nil for bind mounts.
        public var type: String?
        public var flags: UInt
        public var propagation: UInt
        public var data: String?
    }

    public struct Limit: Sendable, Equatable {
        public var resource: Int32
        public var soft: UInt64
        public var hard: UInt64

        public init(resource: Int32, soft: UInt64, hard: UInt64) {
            self.resource = resource
            self.soft = soft
            self.hard = hard
        }
    }

    /// Capability sets as bitmasks (bit n = CAP number n).
    public struct CapabilitySets: Sendable, Equatable {
        public var bounding: UInt64 = 0
        public var effective: UInt64 = 0
        public var permitted: UInt64 = 0
        public var inheritable: UInt64 = 0
        public var ambient: UInt64 = 0
    }

    public var cloneFlags: UInt = 0
    public var rootfs: String?
    public var rootfsReadonly = false
    public var mounts: [MountStep] = []
    public var maskedPaths: [String] = []
    public var readonlyPaths: [String] = []
    /// nil: keep the hostname the UTS namespace has (the VM's, or the shared one's).
    public var hostname: String?
    /// Namespaced kernel parameters to write in the container's namespaces, sorted by key.
    public var sysctls: [Sysctl] = []
    /// Device nodes of the spec (below /dev, relative) that the guest has too, with the same
    /// numbers: bound from the guest's /dev into the container's.
    public var devices: [DeviceNode] = []

    public struct DeviceNode: Sendable, Equatable {
        /// Below /dev, e.g. "net/tun".
        public var path: String
        public var character: Bool
        public var major: UInt32
        public var minor: UInt32
        /// The guest's node to bind there; nil: /dev/<path>.
        public var source: String?

        public init(path: String, character: Bool, major: UInt32, minor: UInt32, source: String? = nil) {
            self.path = path
            self.character = character
            self.major = major
            self.minor = minor
            self.source = source
        }
    }
    public var createDefaultDevices = false
    /// Namespaces shared with another container instead of new ones (not in `cloneFlags`).
    public var joinNamespaces: [NamespaceJoin] = []

    public var argv: [String] = []
    public var env: [String] = []
    public var cwd = "/"
    public var uid: UInt32 = 0
    public var gid: UInt32 = 0
    public var additionalGids: [UInt32] = []
    public var capabilities = CapabilitySets()
    public var noNewPrivileges = false
    public var rlimits: [Limit] = []
    public var oomScoreAdj: Int?
    public var umask: UInt32 = 0o022
    public var terminal = false
}

/// Translates OCI specs into spawn plans, rejecting what cannot be applied with a message naming
/// the field.
public enum SpawnPlanner {
    /// Namespaces every container gets. The network namespace is the VM's own, shared by the pod.
    static let containerNamespaces: UInt =
        LinuxNames.namespaceFlags["mount"]! | LinuxNames.namespaceFlags["pid"]!
        | LinuxNames.namespaceFlags["uts"]! | LinuxNames.namespaceFlags["ipc"]!

    /// A new container whose root file system is at `rootfs` (already resolved inside the shared fs).
    public static func container(spec: OCISpec, rootfs: String) throws(SpecError) -> SpawnPlan {
        guard let process = spec.process else { throw .invalid(field: "process", reason: "missing") }
        var plan = try exec(process: process)
        (plan.cloneFlags, plan.joinNamespaces) = try namespaces(spec.linux?.namespaces ?? [])
        guard rootfs.hasPrefix("/") else { throw .invalid(field: "root.path", reason: "\(rootfs) is not absolute") }
        plan.rootfs = rootfs
        plan.rootfsReadonly = spec.root?.readonly ?? false
        // An empty hostname keeps the namespace's: CRI sets one on the sandbox only, and the pod's
        // other containers share its UTS namespace.
        plan.hostname = spec.hostname?.isEmpty == false ? spec.hostname : nil
        if let hostname = spec.hostname, hostname.utf8.count > 64 {
            throw .invalid(field: "hostname", reason: "longer than 64 bytes")
        }
        for (index, mount) in (spec.mounts ?? []).enumerated() {
            plan.mounts.append(try mountStep(mount, field: "mounts[\(index)]"))
        }
        plan.createDefaultDevices = plan.mounts.contains { $0.destination == "/dev" }
        plan.maskedPaths = try absolutePaths(spec.linux?.maskedPaths, field: "linux.maskedPaths")
        plan.readonlyPaths = try absolutePaths(spec.linux?.readonlyPaths, field: "linux.readonlyPaths")
        plan.sysctls = try containerSysctls(spec.linux?.sysctl ?? [:])
        plan.devices = deviceNodes(spec.linux?.devices ?? [])
        return plan
    }

    /// The spec's character and block devices below /dev, as plain relative paths (at most 1024). The
    /// numbers are the node's of the spec's host; the spawner binds only guest nodes that match them,
    /// so a host disk's numbers never reach whatever the guest has under them.
    static func deviceNodes(_ devices: [OCISpec.Device]) -> [SpawnPlan.DeviceNode] {
        devices.prefix(1024).compactMap { device in
            guard device.type == "c" || device.type == "b" || device.type == "u",
                let major = device.major.flatMap(UInt32.init(exactly:)), let minor = device.minor.flatMap(UInt32.init(exactly:))
            else { return nil }
            return deviceNode(at: device.path, character: device.type != "b", major: major, minor: minor)
        }
    }

    /// The node at `path` (a plain path below /dev, at most 8 components and 128 bytes), bound from
    /// the guest's `source` (nil: the guest's own node at the same path); nil for any other path.
    public static func deviceNode(at path: String, character: Bool, major: UInt32, minor: UInt32, source: String? = nil) -> SpawnPlan.DeviceNode? {
        guard path.hasPrefix("/dev/"), path.utf8.count <= 128 else { return nil }
        let components = path.dropFirst("/dev/".count).split(separator: "/", omittingEmptySubsequences: false)
        guard !components.isEmpty, components.count <= 8, !components.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) else { return nil }
        return .init(path: components.joined(separator: "/"), character: character, major: major, minor: minor, source: source)
    }

    /// Kernel parameters namespaced like runc's list: IPC (`kernel.shm*`, `kernel.msg*`,
    /// `kernel.sem`, `fs.mqueue.*`) and UTS (`kernel.hostname`, `kernel.domainname`); `net.*` is the
    /// pod's network stack, which the VM's sandbox setup already applied. Anything else would change
    /// the whole VM rather than the container, and is refused naming the key, as runc does.
    static func containerSysctls(_ sysctls: [String: String]) throws(SpecError) -> [SpawnPlan.Sysctl] {
        guard sysctls.count <= 64 else { throw .invalid(field: "linux.sysctl", reason: "\(sysctls.count) entries, at most 64") }
        var result: [SpawnPlan.Sysctl] = []
        for (key, value) in sysctls.sorted(by: { $0.key < $1.key }) {
            let field = "linux.sysctl[\(key.prefix(128))]"
            let components = key.split(separator: ".", omittingEmptySubsequences: false)
            guard key.utf8.count <= 128, !components.contains(where: \.isEmpty),
                key.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5f || $0 == 0x2e || $0 == 0x2d })
            else { throw .invalid(field: field, reason: "not a kernel parameter name") }
            guard value.utf8.count <= 256, !value.utf8.contains(where: { $0 == 0x0a || $0 == 0 }) else {
                throw .invalid(field: field, reason: "the value must be at most 256 bytes without newline or NUL")
            }
            if key.hasPrefix("net.") { continue }
            let ipc =
                [
                    "kernel.shmmax", "kernel.shmall", "kernel.shmmni", "kernel.shm_rmid_forced", "kernel.msgmax",
                    "kernel.msgmni", "kernel.msgmnb", "kernel.sem",
                ].contains(key) || key.hasPrefix("fs.mqueue.")
            let uts = key == "kernel.hostname" || key == "kernel.domainname"
            guard ipc || uts else {
                throw .invalid(
                    field: field,
                    reason:
                        "\(key) is not in a separate kernel namespace: it would change the whole VM, not the pod (allowed: kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*, kernel.hostname, kernel.domainname, net.*)"
                )
            }
            result.append(.init(key: key, value: value))
        }
        return result
    }

    /// A process: the init of a container (completed by `container`) or an exec into one.
    public static func exec(process: OCIProcess) throws(SpecError) -> SpawnPlan {
        var plan = SpawnPlan()
        guard let args = process.args, let first = args.first, !first.isEmpty else {
            throw .invalid(field: "process.args", reason: "missing or empty")
        }
        plan.argv = args
        plan.env = process.env ?? []
        for variable in plan.env where !variable.contains("=") {
            throw .invalid(field: "process.env", reason: "\"\(variable)\" is not NAME=value")
        }
        plan.cwd = process.cwd ?? "/"
        guard plan.cwd.hasPrefix("/") else { throw .invalid(field: "process.cwd", reason: "\(plan.cwd) is not absolute") }
        plan.uid = process.user?.uid ?? 0
        plan.gid = process.user?.gid ?? 0
        plan.additionalGids = process.user?.additionalGids ?? []
        plan.umask = process.user?.umask ?? 0o022
        plan.terminal = process.terminal ?? false
        plan.noNewPrivileges = process.noNewPrivileges ?? false
        plan.oomScoreAdj = process.oomScoreAdj
        if let adj = process.oomScoreAdj, !(-1000...1000).contains(adj) {
            throw .invalid(field: "process.oomScoreAdj", reason: "\(adj) is outside -1000...1000")
        }
        if let caps = process.capabilities {
            plan.capabilities.bounding = try capabilityMask(caps.bounding, field: "process.capabilities.bounding")
            plan.capabilities.effective = try capabilityMask(caps.effective, field: "process.capabilities.effective")
            plan.capabilities.permitted = try capabilityMask(caps.permitted, field: "process.capabilities.permitted")
            plan.capabilities.inheritable = try capabilityMask(caps.inheritable, field: "process.capabilities.inheritable")
            plan.capabilities.ambient = try capabilityMask(caps.ambient, field: "process.capabilities.ambient")
        }
        for limit in process.rlimits ?? [] {
            guard let resource = LinuxNames.rlimits[limit.type] else {
                throw .invalid(field: "process.rlimits", reason: "unknown rlimit \(limit.type)")
            }
            guard limit.soft <= limit.hard else {
                throw .invalid(field: "process.rlimits", reason: "\(limit.type) soft limit \(limit.soft) exceeds hard limit \(limit.hard)")
            }
            plan.rlimits.append(.init(resource: resource, soft: limit.soft, hard: limit.hard))
        }
        return plan
    }

    static func capabilityMask(_ names: [String]?, field: String) throws(SpecError) -> UInt64 {
        var mask: UInt64 = 0
        for name in names ?? [] {
            guard let bit = LinuxNames.capabilities[name] else {
                throw .invalid(field: field, reason: "unknown capability \(name)")
            }
            mask |= 1 << UInt64(bit)
        }
        return mask
    }

    static func absolutePaths(_ paths: [String]?, field: String) throws(SpecError) -> [String] {
        let paths = paths ?? []
        for path in paths where !path.hasPrefix("/") {
            throw .invalid(field: field, reason: "\(path) is not absolute")
        }
        return paths
    }

    static func mountStep(_ mount: OCISpec.Mount, field: String) throws(SpecError) -> SpawnPlan.MountStep {
        guard mount.destination.hasPrefix("/") else {
            throw .invalid(field: "\(field).destination", reason: "\(mount.destination) is not absolute")
        }
        var flags: UInt = 0
        var propagation: UInt = 0
        var data: [String] = []
        for option in mount.options ?? [] {
            if let (set, clear) = LinuxNames.mountOptions[option] {
                flags = (flags | set) & ~clear
            } else if let value = LinuxNames.propagationOptions[option] {
                propagation = value
            } else {
                data.append(option)
            }
        }
        let isBind = mount.type == "bind" || flags & LinuxNames.MountFlag.bind != 0
        var type = isBind ? nil : mount.type
        if isBind { flags |= LinuxNames.MountFlag.bind }
        // A cgroup v1 mount request lands on the unified hierarchy: the guest runs cgroup v2 only.
        if type == "cgroup" { type = "cgroup2" }
        if !isBind && (type ?? "").isEmpty {
            throw .invalid(field: "\(field).type", reason: "missing for a non-bind mount of \(mount.destination)")
        }
        // A bind takes no file-system data: a word that is not a mount flag is a typo or an option
        // this runtime does not implement, and running without it would be silently wrong.
        if isBind, let unknown = data.first {
            throw .invalid(field: "\(field).options", reason: "unknown option \"\(unknown.prefix(64))\" for the bind mount of \(mount.destination)")
        }
        if isBind && (mount.source ?? "").isEmpty {
            throw .invalid(field: "\(field).source", reason: "missing for the bind mount of \(mount.destination)")
        }
        return .init(
            source: mount.source, destination: mount.destination, type: type, flags: flags,
            propagation: propagation, data: data.isEmpty ? nil : data.joined(separator: ","))
    }
}
