import AgentAPI
import ContainerdAPI

/// Turns the guest's cgroup v2 figures into containerd's `io.containerd.cgroups.v2.Metrics`, the
/// type `ctr task metrics` and CRI's container stats read (CPU usage, memory usage, working set,
/// RSS via `anon`, page faults).
enum CgroupMetrics {
    /// Entries read from the guest are capped; a hostile guest cannot make the reply grow without bound.
    static let maxIOEntries = 64

    static func v2(_ stats: Swiftkata_Agent_V1_CgroupStats) -> Io_Containerd_Cgroups_V2_Metrics {
        var metrics = Io_Containerd_Cgroups_V2_Metrics()
        metrics.pids.current = stats.pidsCurrent
        metrics.pids.limit = stats.pidsMax

        let cpu = stats.cpuStat
        metrics.cpu.usageUsec = cpu["usage_usec"] ?? 0
        metrics.cpu.userUsec = cpu["user_usec"] ?? 0
        metrics.cpu.systemUsec = cpu["system_usec"] ?? 0
        metrics.cpu.nrPeriods = cpu["nr_periods"] ?? 0
        metrics.cpu.nrThrottled = cpu["nr_throttled"] ?? 0
        metrics.cpu.throttledUsec = cpu["throttled_usec"] ?? 0

        let memory = stats.memoryStat
        var m = Io_Containerd_Cgroups_V2_MemoryStat()
        m.anon = memory["anon"] ?? 0
        m.file = memory["file"] ?? 0
        m.kernelStack = memory["kernel_stack"] ?? 0
        m.slab = memory["slab"] ?? 0
        m.sock = memory["sock"] ?? 0
        m.shmem = memory["shmem"] ?? 0
        m.fileMapped = memory["file_mapped"] ?? 0
        m.fileDirty = memory["file_dirty"] ?? 0
        m.fileWriteback = memory["file_writeback"] ?? 0
        m.anonThp = memory["anon_thp"] ?? 0
        m.inactiveAnon = memory["inactive_anon"] ?? 0
        m.activeAnon = memory["active_anon"] ?? 0
        m.inactiveFile = memory["inactive_file"] ?? 0
        m.activeFile = memory["active_file"] ?? 0
        m.unevictable = memory["unevictable"] ?? 0
        m.slabReclaimable = memory["slab_reclaimable"] ?? 0
        m.slabUnreclaimable = memory["slab_unreclaimable"] ?? 0
        m.pgfault = memory["pgfault"] ?? 0
        m.pgmajfault = memory["pgmajfault"] ?? 0
        m.workingsetRefault =
            memory["workingset_refault_anon"].map { saturatingSum($0, memory["workingset_refault_file"] ?? 0) } ?? (memory["workingset_refault"] ?? 0)
        m.workingsetActivate =
            memory["workingset_activate_anon"].map { saturatingSum($0, memory["workingset_activate_file"] ?? 0) } ?? (memory["workingset_activate"] ?? 0)
        m.workingsetNodereclaim = memory["workingset_nodereclaim"] ?? 0
        m.pgrefill = memory["pgrefill"] ?? 0
        m.pgscan = memory["pgscan"] ?? 0
        m.pgsteal = memory["pgsteal"] ?? 0
        m.pgactivate = memory["pgactivate"] ?? 0
        m.pgdeactivate = memory["pgdeactivate"] ?? 0
        m.pglazyfree = memory["pglazyfree"] ?? 0
        m.pglazyfreed = memory["pglazyfreed"] ?? 0
        m.thpFaultAlloc = memory["thp_fault_alloc"] ?? 0
        m.thpCollapseAlloc = memory["thp_collapse_alloc"] ?? 0
        m.usage = stats.memoryCurrent
        m.usageLimit = stats.memoryMax
        m.swapUsage = stats.memorySwapCurrent
        m.swapLimit = stats.memorySwapMax
        metrics.memory = m

        let events = stats.memoryEvents
        metrics.memoryEvents.low = events["low"] ?? 0
        metrics.memoryEvents.high = events["high"] ?? 0
        metrics.memoryEvents.max = events["max"] ?? 0
        metrics.memoryEvents.oom = events["oom"] ?? 0
        metrics.memoryEvents.oomKill = events["oom_kill"] ?? 0

        metrics.io.usage = stats.io.prefix(maxIOEntries).map { entry in
            var usage = Io_Containerd_Cgroups_V2_IOEntry()
            usage.major = entry.major
            usage.minor = entry.minor
            usage.rbytes = entry.rbytes
            usage.wbytes = entry.wbytes
            usage.rios = entry.rios
            usage.wios = entry.wios
            return usage
        }
        return metrics
    }
}

/// `a + b`, or UInt64.max where that overflows: the guest's figures are not trusted to be sane.
func saturatingSum(_ a: UInt64, _ b: UInt64) -> UInt64 {
    let (sum, overflow) = a.addingReportingOverflow(b)
    return overflow ? .max : sum
}
