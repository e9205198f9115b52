import Glibc
import SwiftKataConfig
import SwiftKataOS

/// How big a pod's VM is: vCPUs and memory.
struct VMSize: Sendable, Equatable, CustomStringConvertible {
    var vcpus: Int
    var memoryMiB: Int

    var description: String { "\(vcpus) vCPU, \(memoryMiB) MiB" }
}

/// Sizes a pod's VM from the configuration and the pod: the configured base (guest kernel and
/// agent) plus the pod's CPU limit rounded up and its memory limit, as containerd 1.7+ passes them on
/// the sandbox container (`io.kubernetes.cri.sandbox-*`); or, where the configuration allows it, the
/// pod's own `io.swiftkata.hypervisor.<setting>` annotation. Capped by the configured maximum: a pod
/// over it fails with a clear error instead of getting a VM smaller than its limits.
enum PodSizing {
    static let cpuQuotaAnnotation = "io.kubernetes.cri.sandbox-cpu-quota"
    static let cpuPeriodAnnotation = "io.kubernetes.cri.sandbox-cpu-period"
    static let memoryAnnotation = "io.kubernetes.cri.sandbox-memory"
    static let overridePrefix = "io.swiftkata.hypervisor."
    static let sandboxAnnotations: Set = [cpuQuotaAnnotation, cpuPeriodAnnotation, memoryAnnotation]

    /// The host's memory, the limit where the configuration leaves `max_memory_mib` at 0, and its
    /// CPUs, beyond which more vCPUs only cost (`usefulVCPUs`).
    struct Host: Sendable {
        var memoryMiB: Int
        var cpus = 64

        static var current: Host {
            Host(
                memoryMiB: max(64, (sysconf(Int32(_SC_PHYS_PAGES)) * sysconf(Int32(_SC_PAGESIZE))) >> 20),
                cpus: max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        }
    }

    /// The VM size for a pod with these sandbox annotations, and the `io.swiftkata.hypervisor.*`
    /// annotations it carried that the configuration does not allow (ignored, for the log).
    static func size(
        annotations: [String: String], hypervisor: Configuration.HypervisorSection, host: Host
    )
        throws(ShimError) -> (size: VMSize, ignored: [String])
    {
        var size = VMSize(vcpus: hypervisor.vcpus, memoryMiB: hypervisor.memoryMiB)
        let quota = try number(annotations, cpuQuotaAnnotation, in: Int64.min...Int64.max) ?? -1
        let period = try number(annotations, cpuPeriodAnnotation, in: 0...Int64.max) ?? 0
        if quota > 0 && period > 0 {
            size.vcpus += Int((quota + period - 1) / period)
        }
        if let bytes = try number(annotations, memoryAnnotation, in: 0...(Int64(1) << 50)), bytes > 0 {
            size.memoryMiB += Int((bytes + (1 << 20) - 1) >> 20)
        }
        if hypervisor.enableAnnotations.contains("vcpus"), let vcpus = try number(annotations, overridePrefix + "vcpus", in: 1...1024) {
            size.vcpus = Int(vcpus)
        }
        if hypervisor.enableAnnotations.contains("memory_mib"),
            let memory = try number(annotations, overridePrefix + "memory_mib", in: 64...(Int64(1) << 30))
        {
            size.memoryMiB = Int(memory)
        }
        let ignored = annotations.keys.filter { key in
            key.hasPrefix(overridePrefix) && !hypervisor.enableAnnotations.contains(String(key.dropFirst(overridePrefix.count)))
        }.sorted()

        try checkWithinMaximum(size, hypervisor: hypervisor, host: host, subject: "the pod needs")
        size.vcpus = min(size.vcpus, usefulVCPUs(hypervisor: hypervisor, host: host))
        return (size, ignored)
    }

    /// The most vCPUs a VM gets: the configured maximum; without one, the host's CPUs plus the base
    /// (a pod cannot use more CPU than the node has, however high its limit, and under TCG every vCPU
    /// a VM could grow to costs its boot: 8 made it ≈ 130 ms slower here, 3 did not). Sizes between
    /// this and `maximum` get this many vCPUs instead of an error, since a limit may exceed the node.
    static func usefulVCPUs(hypervisor: Configuration.HypervisorSection, host: Host) -> Int {
        let maximum = maximum(hypervisor: hypervisor, host: host).vcpus
        return hypervisor.maxVCPUs > 0 ? maximum : min(maximum, host.cpus + hypervisor.vcpus)
    }

    /// How far a VM booted at `boot` may grow while it runs: the useful vCPUs and the maximum memory,
    /// never below its boot size (what its domain is started with, `VMDescription.Hotplug`).
    static func hotplugCeiling(boot: VMSize, hypervisor: Configuration.HypervisorSection, host: Host) -> VMSize {
        VMSize(
            vcpus: max(boot.vcpus, usefulVCPUs(hypervisor: hypervisor, host: host)),
            memoryMiB: max(boot.memoryMiB, maximum(hypervisor: hypervisor, host: host).memoryMiB))
    }

    /// The largest VM a pod may ask for: the configured maximum, else the guest kernel's CPUs and the
    /// host's memory; above it, sizing fails.
    static func maximum(hypervisor: Configuration.HypervisorSection, host: Host) -> VMSize {
        VMSize(
            vcpus: hypervisor.maxVCPUs > 0 ? min(hypervisor.maxVCPUs, guestKernelCPUs) : guestKernelCPUs,
            memoryMiB: hypervisor.maxMemoryMiB > 0 ? hypervisor.maxMemoryMiB : host.memoryMiB)
    }

    /// The size a running VM needs for its containers' summed limits: the configured base plus the
    /// sum (CPUs rounded up), never below the size it booted with. Above the maximum it fails,
    /// naming the limit, and nothing changes.
    static func target(
        boot: VMSize, containers: ContainerLimits, hypervisor: Configuration.HypervisorSection, host: Host
    ) throws(ShimError) -> VMSize {
        let needed = VMSize(
            vcpus: hypervisor.vcpus + Int((containers.cpuMillis + 999) / 1000),
            memoryMiB: hypervisor.memoryMiB + Int((containers.memoryBytes + (1 << 20) - 1) >> 20))
        var size = VMSize(vcpus: max(boot.vcpus, needed.vcpus), memoryMiB: max(boot.memoryMiB, needed.memoryMiB))
        try checkWithinMaximum(size, hypervisor: hypervisor, host: host, subject: "the pod's containers need")
        size.vcpus = max(boot.vcpus, min(size.vcpus, usefulVCPUs(hypervisor: hypervisor, host: host)))
        return size
    }

    private static func checkWithinMaximum(
        _ size: VMSize, hypervisor: Configuration.HypervisorSection, host: Host, subject: String
    ) throws(ShimError) {
        let maximum = maximum(hypervisor: hypervisor, host: host)
        if size.vcpus > maximum.vcpus {
            let limit =
                hypervisor.maxVCPUs > 0 && hypervisor.maxVCPUs <= guestKernelCPUs
                ? "hypervisor.max_vcpus (\(maximum.vcpus))" : "the guest kernel's \(guestKernelCPUs) CPUs"
            throw .failedPrecondition("\(subject) a VM of \(size.vcpus) vCPUs, above \(limit); lower the pod's CPU limits or raise the maximum")
        }
        if size.memoryMiB > maximum.memoryMiB {
            let limit = "hypervisor.max_memory_mib (\(maximum.memoryMiB) MiB\(hypervisor.maxMemoryMiB == 0 ? ": the host's memory" : ""))"
            throw .failedPrecondition("\(subject) a VM of \(size.memoryMiB) MiB, above \(limit); lower the pod's memory limits or raise the maximum")
        }
    }

    /// CPUs the guest kernel supports (CONFIG_NR_CPUS in guest-kernel-config/fragments/base.config).
    static let guestKernelCPUs = 8

    private static func number(_ annotations: [String: String], _ key: String, in range: ClosedRange<Int64>) throws(ShimError) -> Int64? {
        guard let text = annotations[key] else { return nil }
        guard let value = Int64(text.trimmingWhitespace()), range.contains(value) else {
            throw .invalidArgument("annotation \(key)=\"\(text.prefix(64))\" is not a whole number in \(range.lowerBound)...\(range.upperBound)")
        }
        return value
    }
}
