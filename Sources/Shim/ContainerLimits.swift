/// A container's CPU and memory limits as the pod's VM has to hold them: the OCI spec's
/// `linux.resources` at create, or the `LinuxResources` of an update.
struct ContainerLimits: Sendable, Equatable {
    /// CPU limit in thousandths of a CPU (quota / period); 0: none.
    var cpuMillis: Int64 = 0
    /// Memory limit in bytes; 0: none.
    var memoryBytes: Int64 = 0

    /// Limits beyond these are not a container's to ask of a VM (they are refused by the sizing).
    static let largestMemoryBytes = Int64(1) << 50
    static let largestCPUMillis = Int64(1024 * 1000)

    var isEmpty: Bool { cpuMillis == 0 && memoryBytes == 0 }

    init(cpuMillis: Int64 = 0, memoryBytes: Int64 = 0) {
        self.cpuMillis = cpuMillis
        self.memoryBytes = memoryBytes
    }

    /// From an OCI `LinuxResources` object (nil: no limits). Negative or missing values mean
    /// unlimited, as in runc; absurd ones are clamped so the sizing refuses them by name.
    init(resources: JSONValue?) {
        if let limit = resources?["memory"]?["limit"]?.integerValue, limit > 0 {
            memoryBytes = min(limit, Self.largestMemoryBytes)
        }
        if let quota = resources?["cpu"]?["quota"]?.integerValue, quota > 0,
            let period = resources?["cpu"]?["period"]?.integerValue, period > 0
        {
            let millis = quota.multipliedReportingOverflow(by: 1000)
            cpuMillis = millis.overflow ? Self.largestCPUMillis : min(Self.largestCPUMillis, (millis.partialValue + period - 1) / period)
        }
    }

    /// The sum of several containers' limits.
    static func total(_ limits: some Sequence<ContainerLimits>) -> ContainerLimits {
        limits.reduce(into: ContainerLimits()) { sum, next in
            sum.cpuMillis = min(largestCPUMillis, sum.cpuMillis + next.cpuMillis)
            sum.memoryBytes = min(largestMemoryBytes, sum.memoryBytes + next.memoryBytes)
        }
    }
}
