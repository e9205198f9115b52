import Glibc
import SwiftKataOS
import Synchronization

/// Waits for `task` to finish, but no longer than `limit`; true when it finished in time. The task
/// itself goes on either way.
func awaitCompletion(of task: Task<Void, Never>, atMost limit: Duration) async -> Bool {
    let outcome = Mutex<CheckedContinuation<Bool, Never>?>(nil)
    return await withCheckedContinuation { continuation in
        outcome.withLock { $0 = continuation }
        let finish = { @Sendable (finished: Bool) in outcome.withLock { $0.take() }?.resume(returning: finished) }
        let timer = Task {
            try? await Task.sleep(for: limit); finish(false)
        }
        Task {
            await task.value
            finish(true)
            timer.cancel()  // no sleeper left behind for every exit
        }
    }
}

enum BlockingIO {
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
