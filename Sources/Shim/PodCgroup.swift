import Glibc
import SwiftKataOS

/// The pod's cgroup on the host: the sandbox's `linux.cgroupsPath`, where runc would have put the
/// pause container. QEMU and virtiofsd join it in every hierarchy, so the pod's limits (which
/// kubelet sets on the pod's parent cgroup) and the RuntimeClass overhead bound the whole VM, and
/// the node's stats see what the VM costs. cgroup v1 (each controller's hierarchy), v2 and the
/// hybrid layout of this host alike. Only the pod's own leaf is created and removed.
struct PodCgroup: Sendable, Equatable, Codable {
    /// The cgroup below each hierarchy's root, e.g. `/kubepods/besteffort/pod<uid>/<id>`.
    let path: String

    /// From the OCI `cgroupsPath`: a path (cgroupfs driver) or systemd's `slice:prefix:name`, which
    /// becomes the slice's nested path plus `prefix-name.scope` (as runc reads it). Nil for an
    /// empty, relative or escaping path.
    init?(cgroupsPath: String) {
        var path = cgroupsPath
        let parts = cgroupsPath.split(separator: ":", omittingEmptySubsequences: false)
        if parts.count == 3 {
            let (slice, prefix, name) = (String(parts[0]), String(parts[1]), String(parts[2]))
            path = Self.expandSlice(slice.isEmpty ? "system.slice" : slice) + "/" + (prefix.isEmpty ? name : "\(prefix)-\(name)") + ".scope"
        }
        let components = path.split(separator: "/")
        guard path.hasPrefix("/"), !components.isEmpty, path.utf8.count < 4096,
            components.allSatisfy({ $0 != "." && $0 != ".." && !$0.contains("\0") })
        else { return nil }
        self.path = "/" + components.joined(separator: "/")
    }

    /// `a-b-c.slice` → `/a.slice/a-b.slice/a-b-c.slice` (systemd nests slices by their dashes).
    static func expandSlice(_ slice: String) -> String {
        guard slice.hasSuffix(".slice"), slice != "-.slice" else { return "/" + slice }
        let name = slice.dropLast(".slice".count)
        var path = ""
        var prefix = ""
        for part in name.split(separator: "-") {
            prefix = prefix.isEmpty ? String(part) : "\(prefix)-\(part)"
            path += "/\(prefix).slice"
        }
        return path
    }

    /// Where the host's cgroup hierarchies are mounted: each v1 controller hierarchy and the v2 one.
    static func hierarchies() -> [String] {
        guard let bytes = readFile("/proc/self/mounts", limit: 4 << 20) else { return [] }
        return String(decoding: bytes, as: UTF8.self).split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count > 3, fields[2] == "cgroup" || fields[2] == "cgroup2" else { return nil }
            return MountTable.unescapeOctal(String(fields[1]))
        }
    }

    /// Moves `pids` (whole processes) into the pod's cgroup in every hierarchy, creating it where
    /// missing. Returns what failed; a hierarchy that cannot take them is reported, not fatal.
    func join(_ pids: [pid_t]) -> [String] {
        var failures: [String] = []
        for hierarchy in Self.hierarchies() {
            let directory = hierarchy + path
            do {
                try makeDirectories(directory, mode: 0o755)
                if access("\(hierarchy)/cpuset.cpus", F_OK) == 0 { try inheritCPUSet(below: hierarchy) }
                // v1 memory: the pages QEMU already touched move with it, where the kernel still
                // offers that (it is deprecated, and refused by newer kernels).
                _ = writeSmallFile("\(directory)/memory.move_charge_at_immigrate", "3")
                for pid in pids { try Self.write("\(directory)/cgroup.procs", "\(pid)") }
            } catch {
                failures.append("\(directory): \(error)")
            }
        }
        return failures
    }

    /// A new v1 cpuset cgroup starts empty and takes no process: each level of the path that is
    /// still empty gets its parent's CPUs and memory nodes, from the top down.
    private func inheritCPUSet(below hierarchy: String) throws(SystemError) {
        var parent = hierarchy
        for component in path.split(separator: "/") {
            let directory = "\(parent)/\(component)"
            for file in ["cpuset.cpus", "cpuset.mems"]
            where (readText("\(directory)/\(file)", limit: 4096) ?? "").trimmingWhitespace().isEmpty {
                try Self.write("\(directory)/\(file)", (readText("\(parent)/\(file)", limit: 4096) ?? "").trimmingWhitespace())
            }
            parent = directory
        }
    }

    private static func write(_ path: String, _ text: String) throws(SystemError) {
        guard writeSmallFile(path, text) else { throw SystemError("write", path: path, errno: Errno(rawValue: errno)) }
    }

    /// Removes the pod's cgroup (its leaf only) from every hierarchy once no process is left in it,
    /// waiting up to `grace` for the VM's processes to finish exiting (virtiofsd goes after QEMU).
    /// Returns what is left behind (a process still in it, say).
    @discardableResult
    func remove(grace: Duration = .seconds(2)) -> [String] {
        let deadline = ContinuousClock.now + grace
        while !processes().isEmpty && ContinuousClock.now < deadline { usleep(10_000) }
        return Self.hierarchies().compactMap { hierarchy in
            let directory = hierarchy + path
            guard rmdir(directory) != 0, errno != ENOENT else { return nil }
            return "\(directory): \(String(cString: strerror(errno)))"
        }
    }

    /// The processes still in the pod's cgroup, in any hierarchy.
    func processes() -> [pid_t] {
        var pids: Set<pid_t> = []
        for hierarchy in Self.hierarchies() {
            let text = readText("\(hierarchy)\(path)/cgroup.procs", limit: 1 << 20) ?? ""
            for line in text.split(separator: "\n") { if let pid = pid_t(line) { pids.insert(pid) } }
        }
        return pids.sorted()
    }
}
