import OperatorAPI
import Testing

@testable import SwiftKataCtl

/// Rendering many pods into one registry (the end-to-end test parses a real scrape with Prometheus's
/// own parser; this one runs without VMs).
struct MetricsExpositionTests {
    static func pod(_ id: String, claimed: Bool) -> NodeSnapshot.Pod {
        var description = Swiftkata_Operator_V1_PodDescription()
        description.podID = id
        description.namespace = "k8s.io"
        description.domain = "swiftkata-\(id)"
        description.accelerator = "tcg"
        description.transport = "virtio-serial"
        description.warmPool = claimed
        description.boot.totalMs = 1200
        description.guestAnswered = true
        description.guestMemoryTotalBytes = 200 << 20
        description.agentCalls = [
            .with {
                $0.method = "CreateContainer"
                $0.calls = 2
                $0.nanoseconds = 150_000_000
            },
            .with {
                $0.method = "WaitProcess"
                $0.calls = 1
                $0.waits = true
            },
        ]
        return NodeSnapshot.Pod(
            description: description, qemu: ProcessUsage(rssBytes: 1 << 27, pssBytes: 1 << 26, cpuSeconds: 1.5),
            virtiofsd: ProcessUsage(rssBytes: 1 << 22, pssBytes: 1 << 21, cpuSeconds: 0.1))
    }

    @Test func twoPodsRenderIntoOneScrape() {
        let snapshot = NodeSnapshot(
            pods: [Self.pod("a", claimed: false), Self.pod("b", claimed: true)], unreachablePods: 0, warmPoolReady: 1, warmPoolBooting: 0,
            counters: [NodeCounters.warmPoolHits: 1], gatherSeconds: 0.01)
        let text = MetricsExposition.render(snapshot)
        #expect(text.contains(#"swiftkata_pod_process_pss_bytes{pod="b",namespace="k8s.io",process="qemu"}"#))
        #expect(text.contains(#"swiftkata_pod_agent_call_seconds_total{pod="a",namespace="k8s.io",method="CreateContainer"} 0.15"#))
        #expect(
            !text.contains(#"method="WaitProcess"} 0"#)
                || !text.contains("swiftkata_pod_agent_call_seconds_total{pod=\"a\",namespace=\"k8s.io\",method=\"WaitProcess\"}"))
    }
}
