import Glibc
import Synchronization

/// The two descriptors that let a created process exec: the start pipe's write end and the status
/// pipe's read end (`sk_spawn`). They are used at most once: by the start, which closes them, or
/// closed unused when the process goes before it started. Each is closed exactly once: once closed,
/// its number is the agent's to hand out again (to another container's stdin, to a connection), and
/// a second close would close that instead.
final class StartHandles: Sendable {
    struct Descriptors: Sendable {
        var start: CInt
        var status: CInt
    }

    private let descriptors: Mutex<Descriptors?>

    init(start: CInt, status: CInt) {
        descriptors = Mutex(Descriptors(start: start, status: status))
    }

    private init() {
        descriptors = Mutex(nil)
    }

    /// Handles of a process that needs no start (it runs from the outset, as the debug console does).
    static func used() -> StartHandles { StartHandles() }

    /// The descriptors, once: nil after an earlier take (a start, even one that failed) or `discard`.
    /// The caller then owns them.
    func take() -> Descriptors? {
        descriptors.withLock { descriptors in
            defer { descriptors = nil }
            return descriptors
        }
    }

    /// Closes the descriptors unless they were taken.
    func discard() {
        guard let taken = take() else { return }
        for fd in [taken.start, taken.status] where fd >= 0 { close(fd) }
    }
}
