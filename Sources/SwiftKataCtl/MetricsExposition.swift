import OperatorAPI
import Prometheus

/// A `NodeSnapshot` in Prometheus's text exposition format, through swift-prometheus's registry (a
/// fresh one per scrape: every value is read anew, nothing is kept between scrapes). The metric
/// names are listed in the README's operator section.
public enum MetricsExposition {
    public static func render(_ node: NodeSnapshot) -> String {
        let registry = PrometheusCollectorRegistry()
        renderNode(node, into: registry)
        for pod in node.pods { renderPod(pod, into: registry) }
        return registry.emitToString()
    }

    private static func renderNode(_ node: NodeSnapshot, into registry: PrometheusCollectorRegistry) {
        registry.gauge(name: "swiftkata_pods_running", help: "Pods whose shim answered this scrape.").set(to: Double(node.pods.count))
        registry.gauge(name: "swiftkata_pods_unreachable", help: "Pods whose shim has a socket but did not answer this scrape.")
            .set(to: Double(node.unreachablePods))
        let pool = "Warm-pool VMs by state."
        registry.gauge(name: "swiftkata_warm_pool_vms", labels: [("state", "ready")], help: pool).set(to: Double(node.warmPoolReady))
        registry.gauge(name: "swiftkata_warm_pool_vms", labels: [("state", "booting")], help: pool).set(to: Double(node.warmPoolBooting))
        let counters = node.counters
        registry.counter(name: "swiftkata_warm_pool_hits_total", help: "Pods that claimed a warm-pool VM.")
            .increment(by: Int64(clamping: counters[NodeCounters.warmPoolHits] ?? 0))
        registry.counter(name: "swiftkata_warm_pool_misses_total", help: "Pods that found the warm pool empty and booted their own VM.")
            .increment(by: Int64(clamping: counters[NodeCounters.warmPoolMisses] ?? 0))
        registry.counter(name: "swiftkata_pods_started_total", help: "Pod VMs that became ready.")
            .increment(by: Int64(clamping: counters[NodeCounters.podsStarted] ?? 0))
        for cause in NodeCounters.BootFailureCause.allCases {
            registry.counter(name: "swiftkata_boot_failures_total", labels: [("cause", cause.rawValue)], help: "Pod VMs that failed to start, by cause.")
                .increment(by: Int64(clamping: counters[NodeCounters.bootFailure(cause)] ?? 0))
        }
        registry.gauge(name: "swiftkata_scrape_duration_seconds", help: "Time this scrape took to ask every shim.").set(to: Double(node.gatherSeconds))
    }

    private static func renderPod(_ pod: NodeSnapshot.Pod, into registry: PrometheusCollectorRegistry) {
        let description = pod.description
        let labels = [("pod", description.podID), ("namespace", description.namespace)]
        registry.gauge(
            name: "swiftkata_pod_info",
            labels: labels + [
                ("domain", description.domain), ("accelerator", description.accelerator), ("transport", description.transport),
                ("warm_pool", description.warmPool ? "true" : "false"),
            ], help: "A running pod VM (always 1), with how it runs as labels."
        ).set(to: Double(1))
        let phases: [(String, UInt64)] = [
            ("prepare", description.boot.prepareMs), ("domain_start", description.boot.domainStartMs), ("agent_ready", description.boot.agentReadyMs),
            ("sandbox", description.boot.sandboxMs), ("total", description.boot.totalMs),
        ]
        for (phase, milliseconds) in phases {
            registry.gauge(name: "swiftkata_pod_boot_seconds", labels: labels + [("phase", phase)], help: "The pod VM's start, by phase.")
                .set(to: Double(milliseconds) / 1000)
        }
        registry.gauge(name: "swiftkata_pod_vcpus", labels: labels, help: "vCPUs of the pod VM.").set(to: Double(description.vcpus))
        registry.gauge(name: "swiftkata_pod_memory_bytes", labels: labels, help: "Memory of the pod VM.").set(to: Double(description.memoryBytes))
        registry.gauge(name: "swiftkata_pod_containers", labels: labels, help: "Containers of the pod.").set(to: Double(description.containers))
        for (process, usage) in [("qemu", pod.qemu), ("virtiofsd", pod.virtiofsd)] {
            guard let usage else { continue }
            let processLabels = labels + [("process", process)]
            registry.gauge(name: "swiftkata_pod_process_rss_bytes", labels: processLabels, help: "Resident memory of the pod VM's host processes.")
                .set(to: Double(usage.rssBytes))
            registry.gauge(
                name: "swiftkata_pod_process_pss_bytes", labels: processLabels,
                help: "Proportional set size of the pod VM's host processes (shared pages split among their users)."
            ).set(to: Double(usage.pssBytes))
            registry.counter(
                name: "swiftkata_pod_process_cpu_seconds_total", labels: processLabels, help: "User and system CPU time of the pod VM's host processes."
            )
            .increment(by: usage.cpuSeconds)
        }
        if description.guestAnswered {
            registry.gauge(name: "swiftkata_pod_guest_memory_used_bytes", labels: labels, help: "Memory the guest kernel has in use (MemTotal - MemAvailable).")
                .set(to: Double(description.guestMemoryUsedBytes))
            registry.gauge(name: "swiftkata_pod_guest_memory_total_bytes", labels: labels, help: "The guest kernel's MemTotal.")
                .set(to: Double(description.guestMemoryTotalBytes))
            registry.gauge(name: "swiftkata_pod_agent_rss_bytes", labels: labels, help: "Resident memory of the guest agent.")
                .set(to: Double(description.agentRssBytes))
        }
        for calls in description.agentCalls {
            let methodLabels = labels + [("method", calls.method)]
            registry.counter(name: "swiftkata_pod_agent_calls_total", labels: methodLabels, help: "Calls to the guest agent, by method.")
                .increment(by: Int64(clamping: calls.calls))
            registry.counter(name: "swiftkata_pod_agent_call_failures_total", labels: methodLabels, help: "Failed calls to the guest agent, by method.")
                .increment(by: Int64(clamping: calls.failures))
            // Methods that wait by design (WaitProcess, ReadOutput, ...) would only measure waiting.
            if !calls.waits {
                registry.counter(
                    name: "swiftkata_pod_agent_call_seconds_total", labels: methodLabels,
                    help: "Summed latency of calls to the guest agent, by method (methods that wait by design are left out)."
                ).increment(by: Double(calls.nanoseconds) / 1e9)
            }
        }
        for (stream, bytes) in [("stdout", description.stdoutBytes), ("stderr", description.stderrBytes)] {
            registry.counter(
                name: "swiftkata_pod_output_bytes_total", labels: labels + [("stream", stream)], help: "Container output copied to containerd, by stream."
            )
            .increment(by: Int64(clamping: bytes))
        }
    }
}

extension PrometheusCollectorRegistry {
    /// A gauge of this scrape; `help` is the same for every series of a name.
    fileprivate func gauge(name: String, labels: [(String, String)] = [], help: String) -> Gauge {
        let descriptor = MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
        return labels.isEmpty ? makeGauge(descriptor: descriptor) : makeGauge(descriptor: descriptor, labels: labels)
    }

    /// A counter of this scrape, set by one increment to the total it reports.
    fileprivate func counter(name: String, labels: [(String, String)] = [], help: String) -> Counter {
        let descriptor = MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
        return labels.isEmpty ? makeCounter(descriptor: descriptor) : makeCounter(descriptor: descriptor, labels: labels)
    }
}
