import AgentRuntime
import Glibc
import SwiftKataOS

/// A container's cgroup v2 directory in the guest: /sys/fs/cgroup/<container id>.
struct Cgroup: Sendable {
    let path: String

    struct CgroupError: Error, CustomStringConvertible { var description: String }

    static func create(for containerID: String, root: String = "/sys/fs/cgroup") throws(CgroupError) -> Cgroup {
        let cgroup = Cgroup(path: "\(root)/\(containerID)")
        guard mkdir(cgroup.path, 0o755) == 0 || errno == EEXIST else {
            throw CgroupError(description: "creating cgroup \(cgroup.path): \(String(cString: strerror(errno)))")
        }
        return cgroup
    }

    /// Applies memory, cpu and pids limits (cgroup v2 files).
    func apply(_ resources: OCIResources?) throws(CgroupError) {
        guard let resources else { return }
        if let limit = resources.memory?.limit { try write("memory.max", limit > 0 ? "\(limit)" : "max") }
        if let swap = resources.memory?.swap, let limit = resources.memory?.limit, swap > 0, limit > 0 {
            // OCI swap is memory + swap; cgroup v2 wants the swap part alone.
            try write("memory.swap.max", "\(max(0, swap - limit))")
        }
        if let cpu = resources.cpu {
            if let quota = cpu.quota {
                try write("cpu.max", "\(quota > 0 ? "\(quota)" : "max") \(cpu.period ?? 100_000)")
            }
            if let shares = cpu.shares, shares > 0 {
                // The conversion runc and crun use: shares 2..262144 onto weight 1..10000.
                let weight = 1 + ((min(max(shares, 2), 262_144) - 2) * 9999) / 262_142
                try write("cpu.weight", "\(weight)")
            }
        }
        if let pids = resources.pids?.limit { try write("pids.max", pids > 0 ? "\(pids)" : "max") }
    }

    func write(_ file: String, _ value: String) throws(CgroupError) {
        guard writeSmallFile("\(path)/\(file)", value) else {
            throw CgroupError(description: "writing \(value) to \(path)/\(file): \(String(cString: strerror(errno)))")
        }
    }

    func read(_ file: String) -> String? { readText("\(path)/\(file)") }

    /// An O_DIRECTORY fd for CLONE_INTO_CGROUP.
    func openDirectory() throws(CgroupError) -> CInt {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw CgroupError(description: "opening \(path): \(String(cString: strerror(errno)))") }
        return fd
    }

    /// "key value" lines (cpu.stat, memory.stat, memory.events) as a dictionary.
    func keyValues(_ file: String) -> [String: UInt64] {
        var result: [String: UInt64] = [:]
        for line in (read(file) ?? "").split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2, let value = UInt64(parts[1]) { result[String(parts[0])] = value }
        }
        return result
    }

    /// Freezes or thaws every process in the group (pause/resume).
    func freeze(_ frozen: Bool) throws(CgroupError) { try write("cgroup.freeze", frozen ? "1" : "0") }

    /// SIGKILLs every process in the group at once.
    func killAll() throws(CgroupError) { try write("cgroup.kill", "1") }

    func pids() -> [pid_t] {
        (read("cgroup.procs") ?? "").split(separator: "\n").compactMap { pid_t($0) }
    }

    /// Removes the directory once it is empty.
    func remove() { rmdir(path) }
}
