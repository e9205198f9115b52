import Synchronization

/// Set once the pod's VM is being destroyed on purpose, so that watchers of its processes (QEMU,
/// virtiofsd) take their exits for the teardown they are, not for a failure to act on.
final class VMTeardown: Sendable {
    private let started = Mutex(false)

    var hasStarted: Bool { started.withLock { $0 } }

    func begin() { started.withLock { $0 = true } }
}
