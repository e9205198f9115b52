import Dispatch
import Glibc
import SwiftKataOS
import Synchronization

/// Reaps every child of PID 1 (container processes and re-parented orphans) and delivers exit
/// statuses to whoever waits for a pid. Exits that arrive before anyone asked are kept, so a
/// process that dies right after it was spawned is never lost.
///
/// A dedicated thread blocks in waitpid(-1); it does not depend on SIGCHLD reaching it (threads the
/// Swift runtime starts before `main` would not have the signal blocked). When there is no child
/// at all, it sleeps until `childSpawned()` says there may be one.
final class Reaper: Sendable {
    /// An exit status as the OCI runtime reports it: the code, or 128 + signal.
    struct Exit: Sendable, Equatable {
        var status: UInt32
        var exitedAtNanos: Int64
    }

    /// Exits nobody asked for (intermediate spawner processes, orphans) are kept up to this many;
    /// beyond it the oldest are dropped, so the table cannot grow without bound.
    static let maxUnclaimedExits = 4096

    private struct State {
        var exits: [pid_t: Exit] = [:]
        var exitOrder: [pid_t] = []
        var waiters: [pid_t: [CheckedContinuation<Exit, Never>]] = [:]
    }

    private let state = Mutex(State())
    /// Signalled after every spawn, so the reaping thread wakes when it had no children.
    private let childrenMayExist = DispatchSemaphore(value: 0)

    /// Call after creating a child process.
    func childSpawned() {
        childrenMayExist.signal()
    }

    /// Starts the reaping thread.
    func start() {
        startDetachedThread { self.run() }
    }

    private func run() {
        while true {
            var status: Int32 = 0
            let pid = waitpid(-1, &status, 0)
            if pid < 0 {
                if errno == ECHILD { childrenMayExist.wait() }
                continue
            }
            var now = timespec()
            clock_gettime(CLOCK_REALTIME, &now)
            let exit = Exit(status: Reaper.exitStatus(status), exitedAtNanos: Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec))
            let waiters = state.withLock { state -> [CheckedContinuation<Exit, Never>] in
                state.exits[pid] = exit
                state.exitOrder.append(pid)
                if state.exitOrder.count > Self.maxUnclaimedExits {
                    let dropped = state.exitOrder.removeFirst()
                    // A pid that exited again later (reused) keeps its newer entry.
                    if !state.exitOrder.contains(dropped) { state.exits[dropped] = nil }
                }
                return state.waiters.removeValue(forKey: pid) ?? []
            }
            for waiter in waiters { waiter.resume(returning: exit) }
        }
    }

    /// The code a shell would report: the exit code, or 128 + signal for a signal death.
    static func exitStatus(_ status: Int32) -> UInt32 {
        let signal = status & 0x7f
        if signal == 0 { return UInt32((status >> 8) & 0xff) }
        return 128 + UInt32(signal)
    }

    /// Waits until `pid` has exited.
    func wait(for pid: pid_t) async -> Exit {
        await withCheckedContinuation { continuation in
            let exit = state.withLock { state -> Exit? in
                if let exit = state.exits[pid] { return exit }
                state.waiters[pid, default: []].append(continuation)
                return nil
            }
            if let exit { continuation.resume(returning: exit) }
        }
    }

    /// Whether `pid` was reaped and its exit is still kept (not yet forgotten).
    func hasExited(_ pid: pid_t) -> Bool {
        state.withLock { $0.exits[pid] != nil }
    }

    /// Forgets a pid's exit once nobody will ask again (the process was deleted).
    func forget(_ pid: pid_t) {
        state.withLock { _ = $0.exits.removeValue(forKey: pid) }
    }
}
