import AgentAPI
import Logging
import OperatorAPI
import SwiftKataOS
import Synchronization

/// The node's counters (`NodeCounters`), added to by every shim: best effort, since a counter is
/// not worth failing a pod for.
enum NodeCounting {
    static func add(_ name: String, stateDirectory: String, logger: Logger) {
        let file = CounterFile(path: NodeCounters.path(stateDirectory: stateDirectory))
        do { try file.add(name) } catch { logger.debug("node counter not updated", metadata: ["counter": "\(name)", "error": "\(error)"]) }
    }
}

/// The shim's counters of its pod, for `swiftkata-ctl`'s metrics: every finished agent call by
/// method (count, failures, summed time) and the container output bytes copied to containerd.
/// Updated from any task, read by the operator service.
final class PodStatistics: Sendable {
    struct MethodCalls: Sendable, Equatable {
        var calls: UInt64 = 0
        var failures: UInt64 = 0
        var nanoseconds: UInt64 = 0
    }

    struct Snapshot: Sendable, Equatable {
        var agentCalls: [String: MethodCalls] = [:]
        var stdoutBytes: UInt64 = 0
        var stderrBytes: UInt64 = 0
    }

    private let state = Mutex(Snapshot())

    func recordAgentCall(method: String, duration: Duration, failed: Bool) {
        let nanoseconds = UInt64(clamping: duration.components.seconds) &* 1_000_000_000 &+ UInt64(clamping: duration.components.attoseconds / 1_000_000_000)
        state.withLock { snapshot in
            // Method names come from the generated client, a fixed set: the table stays small.
            var calls = snapshot.agentCalls[method, default: MethodCalls()]
            calls.calls &+= 1
            if failed { calls.failures &+= 1 }
            calls.nanoseconds &+= nanoseconds
            snapshot.agentCalls[method] = calls
        }
    }

    func addOutput(_ stream: Swiftkata_Agent_V1_OutputStream, bytes: Int) {
        state.withLock { snapshot in
            if stream == .stderr { snapshot.stderrBytes &+= UInt64(bytes) } else { snapshot.stdoutBytes &+= UInt64(bytes) }
        }
    }

    var snapshot: Snapshot { state.withLock { $0 } }
}
