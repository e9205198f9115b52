import CGuestSys
import Glibc
import SwiftKataOS
import Synchronization

/// Watches each container's memory.events (inotify reports every change) and queues an event when
/// its oom_kill count rises. The host collects them with GetOOMEvent, a long poll.
final class OOMWatcher: Sendable {
    private struct Watched {
        var containerID: String
        var cgroup: Cgroup
        var oomKills: UInt64
    }

    private struct State {
        var watched: [CInt: Watched] = [:]
        var pending: [String] = []
        var waiters: [CheckedContinuation<String, Never>] = []
    }

    /// Events not collected by the host are dropped beyond this many (oldest first).
    static let maxPending = 1024

    private let state = Mutex(State())
    private let fd: CInt

    init() {
        fd = guest_inotify_init()
    }

    /// Starts the thread that blocks on inotify.
    func start() {
        guard fd >= 0 else { return }
        startDetachedThread { self.run() }
    }

    func watch(containerID: String, cgroup: Cgroup) {
        guard fd >= 0 else { return }
        let wd = guest_inotify_watch_modify(fd, "\(cgroup.path)/memory.events")
        guard wd >= 0 else { return }
        let kills = cgroup.keyValues("memory.events")["oom_kill"] ?? 0
        state.withLock { $0.watched[wd] = Watched(containerID: containerID, cgroup: cgroup, oomKills: kills) }
    }

    /// Stops watching; an OOM kill that inotify has not reported yet is still delivered.
    func unwatch(containerID: String) {
        let wds = state.withLock { state in state.watched.filter { $0.value.containerID == containerID }.map(\.key) }
        for wd in wds {
            check(wd)
            inotify_rm_watch(fd, wd)
        }
        state.withLock { state in
            for wd in wds { state.watched[wd] = nil }
        }
    }

    /// Waits for the next OOM kill and returns its container id.
    func next() async -> String {
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state -> String? in
                if !state.pending.isEmpty { return state.pending.removeFirst() }
                state.waiters.append(continuation)
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    private func run() {
        var watches = [CInt](repeating: 0, count: 64)
        while true {
            let count = guest_inotify_read_watches(fd, &watches, CInt(watches.count))
            if count < 0 { return }
            for wd in watches.prefix(Int(count)) { check(wd) }
        }
    }

    private func check(_ wd: CInt) {
        let resumed = state.withLock { state -> (CheckedContinuation<String, Never>, String)? in
            guard var watched = state.watched[wd] else { return nil }
            let kills = watched.cgroup.keyValues("memory.events")["oom_kill"] ?? 0
            guard kills > watched.oomKills else { return nil }
            watched.oomKills = kills
            state.watched[wd] = watched
            if !state.waiters.isEmpty { return (state.waiters.removeFirst(), watched.containerID) }
            state.pending.append(watched.containerID)
            if state.pending.count > Self.maxPending { state.pending.removeFirst() }
            return nil
        }
        if let (waiter, containerID) = resumed { waiter.resume(returning: containerID) }
    }
}
