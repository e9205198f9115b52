import Glibc
import Hypervisor
import SwiftKataOS

/// How a booting VM is judged while the host waits for its agent: by progress, not by a fixed clock
/// alone. QEMU gone ends the wait at once; a VM whose QEMU uses no CPU time and whose console stays
/// silent for `stall` has stopped (a paused or wedged guest) and fails then; a VM that keeps working
/// may take up to `limit`, so a healthy boot slowed by a loaded host (twenty VMs booting on two
/// cores) is not failed by a clock that was sized for an idle one.
public struct BootWatch: Sendable {
    /// The longest wait, however the VM progresses.
    public var limit: Duration
    /// The longest time without progress.
    public var stall: Duration
    public var isAlive: @Sendable () -> Bool
    /// The VM's work so far: QEMU's CPU time and the console's size (nil: cannot be read).
    public var progress: @Sendable () -> Progress?

    /// A reading of a VM's work. Any change of the console is progress, and so is guest CPU time
    /// of at least 5% of the time since the last progress (at least 20 ms): an idle guest's timer
    /// ticks are not.
    public struct Progress: Sendable, Equatable {
        public var cpuMilliseconds: UInt64
        public var consoleBytes: Int64

        public init(cpuMilliseconds: UInt64, consoleBytes: Int64) {
            self.cpuMilliseconds = cpuMilliseconds
            self.consoleBytes = consoleBytes
        }

        func isProgress(since earlier: Progress, after elapsed: Duration) -> Bool {
            consoleBytes != earlier.consoleBytes || cpuMilliseconds >= earlier.cpuMilliseconds + max(20, UInt64(elapsed.milliseconds / 20))
        }
    }

    public init(
        limit: Duration, stall: Duration, isAlive: @escaping @Sendable () -> Bool, progress: @escaping @Sendable () -> Progress?
    ) {
        self.limit = limit
        self.stall = stall
        self.isAlive = isAlive
        self.progress = progress
    }

    /// A plain deadline: no progress reading, the VM may take until `deadline`.
    public static func deadline(_ deadline: ContinuousClock.Instant, isAlive: @escaping @Sendable () -> Bool) -> BootWatch {
        let limit = max(.zero, deadline - ContinuousClock.now)
        return BootWatch(limit: limit, stall: limit, isAlive: isAlive, progress: { nil })
    }

    /// A pod VM's QEMU (`pid`) and its console log. The CPU time is the vCPU threads' (the guest's
    /// own work), not QEMU's main loop, which emulates timers even for an idle guest.
    public static func qemu(pid: pid_t, console: String, limit: Duration, stall: Duration) -> BootWatch {
        BootWatch(
            limit: limit, stall: stall, isAlive: { pid > 0 && kill(pid, 0) == 0 },
            progress: {
                guard let cpu = ProcessCPUTime.milliseconds(pid: pid, threadsNamed: "CPU ") ?? ProcessCPUTime.milliseconds(pid: pid) else { return nil }
                var info = stat()
                return Progress(cpuMilliseconds: cpu, consoleBytes: lstat(console, &info) == 0 ? Int64(info.st_size) : -1)
            })
    }

    /// Why the wait ends now, or nil to go on. Keeps its own record of the last progress.
    struct Judge {
        let watch: BootWatch
        let started: ContinuousClock.Instant
        private var lastReading: Progress?
        private var lastProgress: ContinuousClock.Instant
        private var lastSample: ContinuousClock.Instant

        init(_ watch: BootWatch, started: ContinuousClock.Instant) {
            self.watch = watch
            self.started = started
            lastReading = watch.progress()
            lastProgress = started
            lastSample = started
        }

        /// How long the next call may wait: up to the limit.
        func remaining(at now: ContinuousClock.Instant) -> Duration { started + watch.limit - now }

        mutating func verdict(at now: ContinuousClock.Instant) -> String? {
            guard watch.isAlive() else { return "the VM stopped before its agent answered" }
            if now - started >= watch.limit {
                return lastReading == nil ? "no answer within \(watch.limit)" : "no answer within \(watch.limit) although the VM kept working"
            }
            // Sampled at most four times a second: each sample reads QEMU's /proc files.
            if now - lastSample >= .milliseconds(250) {
                lastSample = now
                if let reading = watch.progress() {
                    if let last = lastReading, !reading.isProgress(since: last, after: now - lastProgress) {
                        if now - lastProgress >= watch.stall {
                            return "the VM made no progress for \(watch.stall) (QEMU used no CPU time and its console was silent)"
                        }
                    } else {
                        lastReading = reading
                        lastProgress = now
                    }
                } else if now - lastProgress >= watch.stall {
                    return "no answer within \(watch.stall)"
                }
            }
            return nil
        }
    }
}
