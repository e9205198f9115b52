import Glibc

/// Writes `bytes` to `path` atomically: a new temporary file beside it (`O_EXCL|O_NOFOLLOW`, so
/// nothing planted at that name is followed or reused), then a rename over `path`.
public func writeFileAtomically(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644) throws(SystemError) {
    let temporary = "\(path).tmp.\(getpid()).\(UInt32.random(in: 0...UInt32.max))"
    let fd = retryingInterrupts { open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode) }
    guard fd >= 0 else { throw .last("create", path: temporary) }
    do throws(SystemError) {
        // The umask must not narrow what the caller asked for (0644 for files QEMU's user reads).
        guard fchmod(fd, mode) == 0 else { throw .last("fchmod", path: temporary) }
        try writeAll(fd: fd, bytes, path: temporary)
    } catch {
        close(fd)
        unlink(temporary)
        throw error
    }
    close(fd)
    guard rename(temporary, path) == 0 else {
        let error = SystemError.last("rename", path: "\(temporary) to \(path)")
        unlink(temporary)
        throw error
    }
}
