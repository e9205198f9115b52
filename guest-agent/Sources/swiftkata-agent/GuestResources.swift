import Glibc
import SwiftKataOS

/// The VM's vCPUs and hot-plugged memory as the guest sees them. The VM has all its vCPUs from the
/// start and the guest boots some of them (`maxcpus=`): the pod's size is how many are online,
/// which is set here. Memory is the host's: it resizes the virtio-mem device, and the guest kernel
/// plugs or unplugs blocks and onlines them itself (`CONFIG_MEMORY_HOTPLUG_DEFAULT_ONLINE`).
struct GuestResources: Sendable {
    /// MemTotal when the agent started, before anything was plugged: the base of `pluggedKiB`.
    let bootMemTotalKiB: UInt64

    static let cpuDirectory = "/sys/devices/system/cpu"

    init() {
        bootMemTotalKiB = Self.memTotalKiB()
    }

    /// Onlines or offlines vCPUs until the first `vcpus` are online, and waits until the plugged
    /// memory is within a block of `pluggedBytes`, polling every 10 ms until `timeout`; returns what
    /// the guest has then.
    func adjust(vcpus: Int, pluggedBytes: UInt64, timeout: Duration) async -> (onlineVCPUs: Int, pluggedBytes: UInt64) {
        let deadline = ContinuousClock.now + timeout
        let wantedKiB = pluggedBytes >> 10
        let toleranceKiB: UInt64 = 2 << 10  // one virtio-mem block
        while true {
            setOnlineVCPUs(vcpus)
            let online = Self.onlineVCPUs()
            let plugged = pluggedKiB()
            let memoryReached = plugged + toleranceKiB >= wantedKiB && plugged <= wantedKiB + toleranceKiB
            if (online == min(vcpus, Self.presentVCPUs()) && memoryReached) || ContinuousClock.now >= deadline {
                return (online, plugged << 10)
            }
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Memory the guest has gained through hotplug since the agent started.
    func pluggedKiB() -> UInt64 {
        let now = Self.memTotalKiB()
        return now > bootMemTotalKiB ? now - bootMemTotalKiB : 0
    }

    /// Onlines cpu1…cpu(count-1) and offlines the ones above (cpu0, the boot CPU, stays online).
    func setOnlineVCPUs(_ count: Int) {
        for index in 1..<Self.maxCPUs {
            let path = "\(Self.cpuDirectory)/cpu\(index)/online"
            guard let state = readText(path)?.trimmingWhitespace() else { continue }
            let wanted = index < count ? "1" : "0"
            if state != wanted { _ = writeText(path, wanted) }
        }
    }

    /// CPUs the guest kernel was built for (CONFIG_NR_CPUS).
    static let maxCPUs = 64

    /// How many vCPUs are online.
    static func onlineVCPUs() -> Int { count(cpuList: "online") }

    /// How many vCPUs the VM has (online or not).
    static func presentVCPUs() -> Int { count(cpuList: "present") }

    /// The number of CPUs in /sys/devices/system/cpu/<list>, a list of ranges ("0-2,4").
    static func count(cpuList list: String) -> Int {
        guard let text = readText("\(cpuDirectory)/\(list)")?.trimmingWhitespace() else { return 1 }
        var count = 0
        for range in text.split(separator: ",") {
            let bounds = range.split(separator: "-").compactMap { Int($0) }
            if bounds.count == 2, bounds[1] >= bounds[0] { count += bounds[1] - bounds[0] + 1 } else if bounds.count == 1 { count += 1 }
        }
        return max(1, count)
    }

    static func memTotalKiB() -> UInt64 {
        ProcKeyValues.value("MemTotal", in: readFilePrefix("/proc/meminfo", limit: 65536) ?? []) ?? 0
    }

    private func writeText(_ path: String, _ text: String) -> Bool {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return text.withCString { write(fd, $0, strlen($0)) } >= 0
    }
}
