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
