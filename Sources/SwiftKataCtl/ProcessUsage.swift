import Glibc
import SwiftKataOS

/// A host process's memory and CPU as the kernel accounts them: RSS and PSS from
/// `/proc/<pid>/smaps_rollup`, user + system CPU time from `/proc/<pid>/stat`.
public struct ProcessUsage: Sendable, Equatable {
    public var rssBytes: UInt64
    public var pssBytes: UInt64
    public var cpuSeconds: Double

    /// nil when the process is gone (or not readable).
    public static func of(pid: Int32) -> ProcessUsage? {
        guard pid > 0, let rollup = readText("/proc/\(pid)/smaps_rollup", limit: 16384),
            let stat = readText("/proc/\(pid)/stat", limit: 4096)
        else { return nil }
        return parse(smapsRollup: rollup, stat: stat)
    }

    static func parse(smapsRollup: String, stat: String, ticksPerSecond: Int = ProcessCPUTime.clockTicksPerSecond) -> ProcessUsage? {
        var kilobytes: [String: UInt64] = [:]
        for line in smapsRollup.split(separator: "\n") {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if fields.count >= 2, fields[0].hasSuffix(":"), let value = UInt64(fields[1]) { kilobytes[String(fields[0].dropLast())] = value }
        }
        guard let rss = kilobytes["Rss"], let pss = kilobytes["Pss"],
            let cpu = ProcessCPUTime.milliseconds(statLine: stat, ticksPerSecond: ticksPerSecond)
        else { return nil }
        return ProcessUsage(rssBytes: rss * 1024, pssBytes: pss * 1024, cpuSeconds: Double(cpu) / 1000)
    }
}
