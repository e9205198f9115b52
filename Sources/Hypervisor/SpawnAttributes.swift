import Glibc

/// posix_spawn attributes for the host programs swiftkata starts (QEMU probes, iproute2, logging
/// binaries): the child starts with no blocked signals, so a daemon that blocks SIGTERM does not
/// hand that on, and optionally with every signal back at its default action (undoing a parent
/// that ignores SIGPIPE or SIGTERM).
public enum SpawnAttributes {
    /// Calls `body` with initialised attributes, destroyed afterwards.
    public static func with<Result>(
        defaultSignalActions: Bool = false, _ body: (UnsafePointer<posix_spawnattr_t>) throws -> Result
    ) rethrows -> Result {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var flags = POSIX_SPAWN_SETSIGMASK
        if defaultSignalActions {
            var all = sigset_t()
            sigemptyset(&all)
            for number in 1..<CInt(32) where number != SIGKILL && number != SIGSTOP { sigaddset(&all, number) }
            posix_spawnattr_setsigdefault(&attributes, &all)
            flags |= POSIX_SPAWN_SETSIGDEF
        }
        posix_spawnattr_setflags(&attributes, Int16(flags))
        return try body(&attributes)
    }
}
