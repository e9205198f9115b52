import Glibc

/// The CPU time a process has used (user and system, all threads), from `/proc/<pid>/stat`.
public enum ProcessCPUTime {
    /// Milliseconds in one `/proc/<pid>/stat` line; nil when the line is not one. The command name
    /// (field 2) may hold spaces and parentheses, so fields count from the last ")": utime and stime
    /// are fields 14 and 15.
    public static func milliseconds(statLine: String, ticksPerSecond: Int = clockTicksPerSecond) -> UInt64? {
        guard let close = statLine.lastIndex(of: ")"), ticksPerSecond > 0 else { return nil }
        let fields = statLine[statLine.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = UInt64(fields[11]), let system = UInt64(fields[12]) else { return nil }
        return (user + system) * 1000 / UInt64(ticksPerSecond)
    }

    /// Milliseconds process `pid` has used; nil when it is gone.
    public static func milliseconds(pid: pid_t) -> UInt64? {
        readText("/proc/\(pid)/stat", limit: 4096).flatMap { milliseconds(statLine: $0) }
    }

    /// Milliseconds the threads of process `pid` whose name starts with `prefix` have used (QEMU's
    /// vCPU threads are "CPU 0/TCG", "CPU 1/KVM", …); nil when the process is gone or has none.
    public static func milliseconds(pid: pid_t, threadsNamed prefix: String) -> UInt64? {
        var total: UInt64 = 0
        var matched = 0
        for name in directoryEntries("/proc/\(pid)/task") where matched < 1024 {
            guard name.first?.isNumber == true, let line = readText("/proc/\(pid)/task/\(name)/stat", limit: 4096),
                let open = line.firstIndex(of: "("), let close = line.lastIndex(of: ")"), open < close,
                line[line.index(after: open)..<close].hasPrefix(prefix), let used = milliseconds(statLine: line)
            else { continue }
            total += used
            matched += 1
        }
        return matched > 0 ? total : nil
    }

    /// The kernel's clock ticks per second (`_SC_CLK_TCK`), in which /proc reports CPU time.
    public static var clockTicksPerSecond: Int { sysconf(Int32(_SC_CLK_TCK)) }
}
