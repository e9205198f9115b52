import Glibc
import Synchronization
import SwiftKataOS

/// Runs a blocking call (opening a FIFO that waits for its peer, a read or write on one, starting a
/// domain) on a thread of its own, so neither the event loop nor the cooperative pool ever blocks.
/// Not on Dispatch's global queue: on Linux it runs about one worker per CPU and adds more only after
/// a while, so a stdin FIFO that waits for its writer plus a domain start (≈ 400 ms) held up every
/// other blocking call of the shim (the output copy, and with it the exit) for that long.
func onBlockingThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        let work = Unmanaged.passRetained(BlockingWork { continuation.resume(returning: body()) })
        var thread = pthread_t()
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        defer { pthread_attr_destroy(&attributes) }
        let created = pthread_create(&thread, &attributes, { context in
            Unmanaged<BlockingWork>.fromOpaque(context!).takeRetainedValue().run()
            return nil
        }, work.toOpaque())
        if created != 0 {
            // No thread to be had (resource limits): run it where we are rather than never.
            work.takeRetainedValue().run()
        }
    }
}

/// A closure handed to a new thread.
private final class BlockingWork: Sendable {
    let run: @Sendable () -> Void
    init(_ run: @escaping @Sendable () -> Void) { self.run = run }
}

/// Waits for `task` to finish, but no longer than `limit`; true when it finished in time. The task
/// itself goes on either way.
func awaitCompletion(of task: Task<Void, Never>, atMost limit: Duration) async -> Bool {
    let outcome = Mutex<CheckedContinuation<Bool, Never>?>(nil)
    return await withCheckedContinuation { continuation in
        outcome.withLock { $0 = continuation }
        let finish = { @Sendable (finished: Bool) in outcome.withLock { $0.take() }?.resume(returning: finished) }
        let timer = Task { try? await Task.sleep(for: limit); finish(false) }
        Task {
            await task.value
            finish(true)
            timer.cancel()  // no sleeper left behind for every exit
        }
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
