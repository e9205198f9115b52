import OperatorAPI
import SwiftKataOS

/// Everything one scrape reports: each pod's description with its VM's host processes, the warm
/// pool, and the node's counters.
public struct NodeSnapshot: Sendable {
    public struct Pod: Sendable {
        public var description: Swiftkata_Operator_V1_PodDescription
        public var qemu: ProcessUsage?
        public var virtiofsd: ProcessUsage?
    }

    public var pods: [Pod]
    /// Shims whose socket exists but that did not answer.
    public var unreachablePods: Int
    public var warmPoolReady: Int
    public var warmPoolBooting: Int
    public var counters: [String: UInt64]
    public var gatherSeconds: Double

    /// Asks every pod's shim (concurrently, each within `timeout`) and reads the host's side.
    public static func gather(stateDirectory: String, timeout: Duration = .seconds(5)) async -> NodeSnapshot {
        let started = ContinuousClock.now
        let (descriptions, unreachable) = await PodSockets(stateDirectory: stateDirectory).describeAll(askGuest: true, timeout: timeout)
        let pods = descriptions.map { description in
            Pod(
                description: description, qemu: ProcessUsage.of(pid: Int32(clamping: description.qemuPid)),
                virtiofsd: description.virtiofsdPid > 0 ? ProcessUsage.of(pid: Int32(clamping: description.virtiofsdPid)) : nil)
        }
        var ready = 0
        var booting = 0
        let pool = "\(stateDirectory)/pool"
        for key in directoryEntries(pool) where !key.hasPrefix(".") {
            for entry in directoryEntries("\(pool)/\(key)") {
                if entry.hasPrefix(".booting-") { booting += 1 } else if !entry.hasPrefix(".") { ready += 1 }
            }
        }
        let counters = (try? CounterFile(path: NodeCounters.path(stateDirectory: stateDirectory)).read()) ?? [:]
        let elapsed = ContinuousClock.now - started
        return NodeSnapshot(
            pods: pods, unreachablePods: unreachable, warmPoolReady: ready, warmPoolBooting: booting, counters: counters,
            gatherSeconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
    }
}
