import Synchronization
import Testing

@testable import AgentClient

/// The boot's verdicts: dead at once, stalled after `stall`, progressing until `limit`.
struct BootWatchTests {
    final class FakeVM: Sendable {
        let state = Mutex((alive: true, cpu: UInt64(0), console: Int64(0)))
        var watch: BootWatch {
            BootWatch(
                limit: .seconds(60), stall: .seconds(5), isAlive: { self.state.withLock { $0.alive } },
                progress: { self.state.withLock { BootWatch.Progress(cpuMilliseconds: $0.cpu, consoleBytes: $0.console) } })
        }
    }

    @Test func aVMThatKeepsWorkingMayTakeUntilTheLimit() {
        let vm = FakeVM()
        let started = ContinuousClock.now
        var judge = BootWatch.Judge(vm.watch, started: started)
        for second in 1..<60 {
            vm.state.withLock { $0.cpu += 100 }  // 10 % of a core: a loaded host
            #expect(judge.verdict(at: started + .seconds(second)) == nil, "failed at \(second) s")
        }
        #expect(judge.verdict(at: started + .seconds(60))?.contains("kept working") == true)
    }

    @Test func aVMThatStopsFailsAfterTheStall() {
        let vm = FakeVM()
        let started = ContinuousClock.now
        var judge = BootWatch.Judge(vm.watch, started: started)
        vm.state.withLock { $0.cpu += 500 }
        #expect(judge.verdict(at: started + .seconds(1)) == nil)
        // Paused: 10 ms of CPU over the next seconds is no progress.
        vm.state.withLock { $0.cpu += 10 }
        #expect(judge.verdict(at: started + .seconds(3)) == nil)
        #expect(judge.verdict(at: started + .seconds(5)) == nil)
        let verdict = judge.verdict(at: started + .seconds(6.5))
        #expect(verdict?.contains("made no progress for 5") == true, "\(verdict ?? "nil")")
    }

    @Test func consoleOutputAloneIsProgress() {
        let vm = FakeVM()
        let started = ContinuousClock.now
        var judge = BootWatch.Judge(vm.watch, started: started)
        for second in 1..<20 {
            vm.state.withLock { $0.console += 80 }
            #expect(judge.verdict(at: started + .seconds(second)) == nil)
        }
    }

    @Test func aDeadVMFailsAtOnce() {
        let vm = FakeVM()
        let started = ContinuousClock.now
        var judge = BootWatch.Judge(vm.watch, started: started)
        vm.state.withLock { $0.alive = false }
        #expect(judge.verdict(at: started + .milliseconds(10))?.contains("stopped") == true)
    }

    @Test func aPlainDeadlineHasNoStallOfItsOwn() {
        let started = ContinuousClock.now
        var judge = BootWatch.Judge(.deadline(started + .seconds(10), isAlive: { true }), started: started)
        #expect(judge.verdict(at: started + .seconds(9)) == nil)
        #expect(judge.verdict(at: started + .seconds(10.5))?.hasPrefix("no answer within") == true)
    }
}
