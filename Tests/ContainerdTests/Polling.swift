import Foundation

/// Calls `probe` every `interval` seconds until it returns a value or `timeout` seconds have passed:
/// the bounded wait the end-to-end tests use on real signals (the host's state, containerd's answers).
func poll<T>(timeout: TimeInterval, every interval: TimeInterval = 0.1, _ probe: () -> T?) -> T? {
    let deadline = Date().addingTimeInterval(timeout)
    while true {
        if let value = probe() { return value }
        guard Date() < deadline else { return nil }
        usleep(useconds_t(interval * 1_000_000))
    }
}

/// `poll` for a condition: whether it held within `timeout`.
func pollUntil(timeout: TimeInterval, every interval: TimeInterval = 0.1, _ condition: () -> Bool) -> Bool {
    poll(timeout: timeout, every: interval) { condition() ? true : nil } ?? false
}
