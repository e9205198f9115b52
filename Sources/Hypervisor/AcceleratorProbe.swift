import Glibc
import SwiftKataConfig
import SwiftKataOS

/// The outcome of a KVM boot probe.
public struct KVMProbeResult: Sendable, Equatable, Codable {
    public var usable: Bool
    /// Why KVM is (not) used, for logs and swiftkata-check.
    public var reason: String
    public var bootID: String
    public var kernelKey: String

    public init(usable: Bool, reason: String, bootID: String, kernelKey: String) {
        self.usable = usable
        self.reason = reason
        self.bootID = bootID
        self.kernelKey = kernelKey
    }
}

/// Runs and caches the KVM boot probe.
public struct AcceleratorProbe: Sendable {
    public var cacheDirectory: String
    /// Boots the guest under KVM and reports whether the agent answered; injected so the probe
    /// itself stays independent of how the VM is started (QEMU directly, or libvirt).
    public var bootUnderKVM: @Sendable () async -> (ok: Bool, detail: String)

    public init(cacheDirectory: String = "/var/cache/swiftkata/kvm-probe", bootUnderKVM: @escaping @Sendable () async -> (ok: Bool, detail: String)) {
        self.cacheDirectory = cacheDirectory
        self.bootUnderKVM = bootUnderKVM
    }

    /// The accelerator to use for `setting`, probing (or reading the cached probe) for `auto`.
    public func choose(_ setting: AcceleratorSetting, kernelPath: String) async -> (VMDescription.Accelerator, String) {
        switch setting {
        case .kvm: return (.kvm, "configured: kvm")
        case .tcg: return (.tcg, "configured: tcg")
        case .auto:
            let result = await probe(kernelPath: kernelPath)
            return (result.usable ? .kvm : .tcg, result.reason)
        }
    }

    /// The cached result for this boot and kernel, or a fresh probe (then cached).
    public func probe(kernelPath: String) async -> KVMProbeResult {
        let bootID = (readText("/proc/sys/kernel/random/boot_id") ?? "unknown").filter { !$0.isWhitespace }
        let kernelKey = Self.kernelKey(kernelPath)
        let cacheFile = "\(cacheDirectory)/\(bootID)-\(kernelKey)"
        if let cached = readText(cacheFile), let result = KVMProbeResult(cacheLine: cached, bootID: bootID, kernelKey: kernelKey) {
            return result
        }
        let result: KVMProbeResult
        if access("/dev/kvm", R_OK | W_OK) != 0 {
            result = KVMProbeResult(usable: false, reason: "/dev/kvm is missing or not accessible: using TCG (slow)", bootID: bootID, kernelKey: kernelKey)
        } else {
            let (ok, detail) = await bootUnderKVM()
            result = KVMProbeResult(
                usable: ok,
                reason: ok ? "KVM boot probe passed (\(detail))" : "KVM is present but a guest did not boot under it (\(detail)): using TCG (slow)",
                bootID: bootID, kernelKey: kernelKey)
        }
        // A cache that cannot be written only costs the next start another probe.
        try? makeDirectories(cacheDirectory, mode: 0o700)
        try? writeFileAtomically(cacheFile, Array(result.cacheLine.utf8), mode: 0o644)
        return result
    }

    /// Identifies the kernel by path, size and modification time (cheap, changes on every rebuild).
    static func kernelKey(_ path: String) -> String {
        var info = stat()
        guard stat(path, &info) == 0 else { return "missing" }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in "\(path)|\(info.st_size)|\(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)".utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        return String(hash, radix: 16)
    }
}

extension KVMProbeResult {
    /// One line: "usable|reason".
    var cacheLine: String { "\(usable ? 1 : 0)|\(reason)" }

    init?(cacheLine: String, bootID: String, kernelKey: String) {
        let parts = cacheLine.split(separator: "|", maxSplits: 1)
        guard parts.count == 2, parts[0] == "0" || parts[0] == "1" else { return nil }
        self.init(usable: parts[0] == "1", reason: String(parts[1]).filter { $0 != "\n" }, bootID: bootID, kernelKey: kernelKey)
    }
}
