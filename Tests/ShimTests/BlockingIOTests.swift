import Foundation
import SwiftKataOS
import Testing

@testable import Shim

/// The shim's helpers for blocking calls and bounded waits.
@Suite struct BlockingIOTests {
    /// Every blocking call gets a thread of its own: eight calls that each wait until all eight have
    /// started all get there (on a pool of one worker per CPU they would wait for each other).
    @Test func blockingCallsDoNotWaitForEachOther() async {
        let count = 8
        let rendezvous = Rendezvous(parties: count)
        let results = await withTaskGroup(of: Bool.self, returning: [Bool].self) { group in
            for _ in 0..<count {
                group.addTask { await onBlockingThread { rendezvous.arriveAndWait(upTo: 10) } }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results == Array(repeating: true, count: count))
    }

    @Test func boundedWaitReportsWhetherTheTaskFinished() async {
        let finished = Task<Void, Never> {}
        #expect(await awaitCompletion(of: finished, atMost: .seconds(10)))
        let never = Task<Void, Never> { try? await Task.sleep(for: .seconds(3600)) }
        defer { never.cancel() }
        #expect(await awaitCompletion(of: never, atMost: .milliseconds(50)) == false)
    }
}

/// Blocks each caller until `parties` callers have arrived (or the time is up: false).
private final class Rendezvous: @unchecked Sendable {
    private let condition = NSCondition()
    private var arrived = 0
    private let parties: Int

    init(parties: Int) { self.parties = parties }

    func arriveAndWait(upTo seconds: TimeInterval) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        arrived += 1
        condition.broadcast()
        let deadline = Date().addingTimeInterval(seconds)
        while arrived < parties {
            if !condition.wait(until: deadline) { return false }
        }
        return true
    }
}
