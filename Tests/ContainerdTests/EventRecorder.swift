import Foundation
import Synchronization

/// Every event of the test's containerd (`ctr events`), from creation until `stop()`.
final class EventRecorder {
    private final class Buffer: Sendable {
        let data = Mutex(Data())
    }
    private let process = Process()
    private let output = Pipe()
    private let collected = Buffer()

    init(socket: String) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/ctr")
        process.arguments = ["--address", socket, "events"]
        process.standardOutput = output
        process.standardError = output
        let collected = collected
        output.fileHandleForReading.readabilityHandler = { handle in
            let chunk = handle.availableData
            collected.data.withLock { $0.append(chunk) }
        }
        try process.run()
    }

    /// What was printed so far.
    var text: String { String(decoding: collected.data.withLock { $0 }, as: UTF8.self) }

    /// Stops recording (after a moment for the last events) and returns what was printed.
    func stop() -> String {
        Thread.sleep(forTimeInterval: 0.5)
        if process.isRunning { process.terminate() }
        output.fileHandleForReading.readabilityHandler = nil
        return text
    }

    deinit { if process.isRunning { process.terminate() } }
}
