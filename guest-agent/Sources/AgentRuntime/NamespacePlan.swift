/// A namespace a new container shares with another container of the pod instead of getting its own.
///
/// The spec names it as `linux.namespaces[].path` = `/proc/<pid>/ns/<type>`, where `<pid>` is the guest
/// pid of that container's init (as CreateContainer returned it). The planner checks only the form;
/// the agent checks that the pid is the init of a live container it created.
public struct NamespaceJoin: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        case uts, ipc, pid
    }

    public var kind: Kind
    public var pid: Int32

    public init(kind: Kind, pid: Int32) {
        self.kind = kind
        self.pid = pid
    }

    /// The namespace file opened to join it.
    public var path: String { "/proc/\(pid)/ns/\(kind.rawValue)" }
    /// CLONE_NEWUTS / CLONE_NEWIPC / CLONE_NEWPID.
    public var cloneFlag: UInt { LinuxNames.namespaceFlags[kind.rawValue]! }
}

extension SpawnPlanner {
    /// Largest pid Linux hands out (PID_MAX_LIMIT).
    static let maxPid = 4_194_304

    /// Clone flags and joins for a new container's `linux.namespaces`. Every container gets new mount,
    /// pid, uts and ipc namespaces unless a uts, ipc or pid entry has a path (then it joins that one);
    /// `network` always means the VM's own namespace, shared by the pod; `cgroup` adds a new one.
    static func namespaces(_ entries: [OCISpec.Namespace]) throws(SpecError) -> (cloneFlags: UInt, joins: [NamespaceJoin]) {
        var flags = containerNamespaces
        var joins: [NamespaceJoin] = []
        var seen: Set<String> = []
        for (index, entry) in entries.enumerated() {
            let field = "linux.namespaces[\(index)]"
            guard seen.insert(entry.type).inserted else {
                throw .invalid(field: "linux.namespaces", reason: "\(entry.type.prefix(32)) is listed twice")
            }
            let path = entry.path ?? ""
            switch entry.type {
            case "network":
                continue
            case "uts", "ipc", "pid":
                guard !path.isEmpty else { continue }
                let join = try namespaceJoin(kind: NamespaceJoin.Kind(rawValue: entry.type)!, path: path, field: "\(field).path")
                flags &= ~join.cloneFlag
                joins.append(join)
            case "mount", "cgroup":
                guard path.isEmpty else {
                    throw .unsupported(field: "\(field).path", reason: "joining another \(entry.type) namespace (only uts, ipc and pid can be shared)")
                }
                if entry.type == "cgroup" { flags |= LinuxNames.namespaceFlags["cgroup"]! }
            case "user":
                throw .unsupported(field: "linux.namespaces", reason: "user namespaces (the VM is the isolation boundary)")
            default:
                throw .invalid(field: "linux.namespaces", reason: "unknown namespace type \(entry.type.prefix(32))")
            }
        }
        return (flags, joins)
    }

    /// Accepts exactly `/proc/<pid>/ns/<kind>` with a decimal pid in 1...4194304 (no sign, no leading zero).
    static func namespaceJoin(kind: NamespaceJoin.Kind, path: String, field: String) throws(SpecError) -> NamespaceJoin {
        let expected = "/proc/<pid>/ns/\(kind.rawValue) (the pid of a container's init in this pod)"
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        let digits = parts.count == 5 ? parts[2] : ""
        guard parts.count == 5, parts[0].isEmpty, parts[1] == "proc", parts[3] == "ns", parts[4] == kind.rawValue,
            (1...7).contains(digits.utf8.count), digits.first != "0",
            digits.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let pid = Int(digits), pid <= maxPid
        else {
            throw .invalid(field: field, reason: "\"\(path.prefix(64))\" is not \(expected)")
        }
        return NamespaceJoin(kind: kind, pid: Int32(pid))
    }
}
