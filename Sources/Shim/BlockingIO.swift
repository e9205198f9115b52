import Dispatch
import Glibc
import Synchronization

/// Runs a blocking system call (opening a FIFO that waits for its peer, a read or write on one) on a
/// Dispatch worker thread, so neither the event loop nor the cooperative pool ever blocks.
func onBlockingThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(returning: body()) }
    }
}

/// Waits for `task` to finish, but no longer than `limit`; true when it finished in time. The task
/// itself goes on either way.
func awaitCompletion(of task: Task<Void, Never>, atMost limit: Duration) async -> Bool {
    let outcome = Mutex<CheckedContinuation<Bool, Never>?>(nil)
    return await withCheckedContinuation { continuation in
        outcome.withLock { $0 = continuation }
        let finish = { @Sendable (finished: Bool) in outcome.withLock { $0.take() }?.resume(returning: finished) }
        Task { await task.value; finish(true) }
        Task { try? await Task.sleep(for: limit); finish(false) }
    }
}

enum BlockingIO {
    /// Writes all of `bytes`; false when the reader went away (EPIPE) or another error occurred.
    static func writeAll(_ fd: CInt, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { return false }
            offset += written
        }
        return true
    }

    /// One read of up to `limit` bytes; empty at EOF or on error.
    static func readChunk(_ fd: CInt, limit: Int) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: limit)
        while true {
            let count = read(fd, &buffer, limit)
            if count < 0 && errno == EINTR { continue }
            return count > 0 ? Array(buffer[0..<count]) : []
        }
    }
}
