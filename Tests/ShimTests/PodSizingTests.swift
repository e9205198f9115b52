import Foundation
import SwiftKataConfig
import Testing

@testable import Shim

@Suite("Pod VM sizing")
struct PodSizingTests {
    static let host = PodSizing.Host(memoryMiB: 24 * 1024)

    static func size(
        _ annotations: [String: String], _ configure: (inout Configuration.HypervisorSection) -> Void = { _ in }
    )
        throws(ShimError) -> (size: VMSize, ignored: [String])
    {
        var hypervisor = Configuration().hypervisor
        configure(&hypervisor)
        return try PodSizing.size(annotations: annotations, hypervisor: hypervisor, host: host)
    }

    @Test func podsWithoutLimitsGetTheBase() throws {
        #expect(try Self.size([:]).size == VMSize(vcpus: 1, memoryMiB: 256))
        // containerd's "no limit": quota -1, memory 0.
        let unlimited = [
            "io.kubernetes.cri.sandbox-cpu-quota": "-1", "io.kubernetes.cri.sandbox-cpu-period": "100000",
            "io.kubernetes.cri.sandbox-memory": "0",
        ]
        #expect(try Self.size(unlimited).size == VMSize(vcpus: 1, memoryMiB: 256))
    }

    @Test func theBasePlusThePodsLimitsRoundedUp() throws {
        let pod = [
            "io.kubernetes.cri.sandbox-cpu-quota": "150000", "io.kubernetes.cri.sandbox-cpu-period": "100000",
            "io.kubernetes.cri.sandbox-memory": "\(768 << 20 + 1)",
        ]
        #expect(try Self.size(pod).size == VMSize(vcpus: 3, memoryMiB: 1025))
    }

    @Test func swiftkataAnnotationsOnlyWhereTheConfigurationAllowsThem() throws {
        let pod = ["io.swiftkata.hypervisor.vcpus": "4", "io.swiftkata.hypervisor.memory_mib": "2048", "io.swiftkata.hypervisor.kernel": "/x"]
        let closed = try Self.size(pod)
        #expect(closed.size == VMSize(vcpus: 1, memoryMiB: 256))
        #expect(closed.ignored == ["io.swiftkata.hypervisor.kernel", "io.swiftkata.hypervisor.memory_mib", "io.swiftkata.hypervisor.vcpus"])
        let open = try Self.size(pod) { $0.enableAnnotations = ["vcpus"] }
        #expect(open.size == VMSize(vcpus: 4, memoryMiB: 256))
        #expect(open.ignored == ["io.swiftkata.hypervisor.kernel", "io.swiftkata.hypervisor.memory_mib"])
    }

    @Test func aPodOverTheMaximumFailsNamingIt() {
        let big = ["io.kubernetes.cri.sandbox-memory": "\(4 << 30)"]
        #expect(
            throws: ShimError.failedPrecondition(
                "the pod needs a VM of 4352 MiB, above hypervisor.max_memory_mib (2048 MiB); lower the pod's memory limits or raise the maximum"
            )
        ) { try Self.size(big) { $0.maxMemoryMiB = 2048 } }
        let host = ["io.kubernetes.cri.sandbox-memory": "\(30 << 30)"]
        let error = #expect(throws: ShimError.self) { try Self.size(host) }
        #expect(error?.description.contains("the host's memory") == true)
        let cpus = ["io.kubernetes.cri.sandbox-cpu-quota": "1600000", "io.kubernetes.cri.sandbox-cpu-period": "100000"]
        let kernel = #expect(throws: ShimError.self) { try Self.size(cpus) }
        #expect(kernel?.description.contains("the guest kernel's 8 CPUs") == true)
        let configured = #expect(throws: ShimError.self) { try Self.size(cpus) { $0.maxVCPUs = 4 } }
        #expect(configured?.description.contains("hypervisor.max_vcpus (4)") == true)
    }

    @Test func theHostsMemoryIsRead() throws {
        let meminfo = try String(contentsOfFile: "/proc/meminfo", encoding: .utf8)
        let kib = try #require(meminfo.split(separator: "\n").first { $0.hasPrefix("MemTotal:") }?.split(separator: " ").dropFirst().first)
        let expected = (Int(kib) ?? 0) >> 10
        #expect(abs(PodSizing.Host.current.memoryMiB - expected) < 64, "\(PodSizing.Host.current.memoryMiB) MiB vs MemTotal \(expected) MiB")
    }

    @Test func badNumbersAreRefusedNamingTheAnnotation() {
        let error = #expect(throws: ShimError.self) { try Self.size(["io.kubernetes.cri.sandbox-memory": "lots"]) }
        #expect(error?.ttrpcError.code == .invalidArgument)
        #expect(error?.description.contains("io.kubernetes.cri.sandbox-memory") == true)
        #expect(throws: ShimError.self) { try Self.size(["io.swiftkata.hypervisor.vcpus": "0"]) { $0.enableAnnotations = ["vcpus"] } }
    }
}
