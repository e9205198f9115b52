import SwiftKataConfig

/// A pod VM as swiftkata wants it, before it becomes libvirt domain XML.
public struct VMDescription: Sendable, Equatable {
    /// How guest code runs: hardware virtualization, or QEMU's emulator.
    public enum Accelerator: String, Sendable, Equatable {
        case kvm
        case tcg
    }

    /// The pod's host directory as the guest sees it.
    public enum SharedFilesystem: Sendable, Equatable {
        /// virtio-fs through libvirt-managed virtiofsd (needs shared memfd memory backing).
        case virtioFS(hostPath: String, tag: String, virtiofsd: String = "/usr/lib/qemu/virtiofsd")
        /// 9p over virtio, served by QEMU itself.
        case ninep(hostPath: String, tag: String)
    }

    /// The channel carrying the agent's ttrpc.
    public enum AgentChannel: Sendable, Equatable {
        /// virtio-vsock with a CID libvirt picks; the agent listens on port 1024.
        case vsock
        /// A virtio-serial port named `name`, bound on the host to a unix socket at `socketPath`.
        case virtioSerial(socketPath: String, name: String)
    }

    /// A tap device (already created in the pod's network namespace) attached as virtio-net.
    public struct Tap: Sendable, Equatable {
        public var device: String
        public var macAddress: String
        public init(device: String, macAddress: String) {
            self.device = device
            self.macAddress = macAddress
        }
    }

    /// What `virsh list` and cleanup use to recognise a swiftkata domain.
    public struct Owner: Sendable, Equatable {
        public var podID: String
        public var namespace: String
        /// A warm-pool VM booted before any pod asked for it: `podID` is the pool entry's id.
        public var pooled: Bool
        public init(podID: String, namespace: String) {
            self.podID = podID
            self.namespace = namespace
            pooled = false
        }

        /// The owner of warm-pool entry `entryID`.
        public static func warmPool(entryID: String) -> Owner {
            var owner = Owner(podID: entryID, namespace: "")
            owner.pooled = true
            return owner
        }
    }

    public var owner: Owner
    public var accelerator: Accelerator
    public var machine: String = "pc"
    public var vcpus: Int = 1
    public var memoryMiB: Int = 256
    public var kernel: String
    /// The guest's root file system (the agent): a read-only root disk or an initramfs.
    public var image: GuestImage
    /// The kernel command line before the image's own parameters (`GuestImage.kernelParameters`).
    public var kernelCommandLine: String
    public var sharedFilesystem: SharedFilesystem?
    public var agentChannel: AgentChannel
    /// The guest's serial console is written here.
    public var consoleLog: String
    public var tap: Tap?
    public var emulator = "/usr/bin/qemu-system-x86_64"
    /// A virtio-balloon whose only job is free page reporting: pages the guest frees (page cache it
    /// dropped, finished processes) go back to the host instead of staying in QEMU's RSS.
    public var freePageReporting = true
    /// TCG only: the size of QEMU's translated-code cache (nil: QEMU's default, up to 1 GiB).
    public var translationCacheMiB: Int?
    public var cpuReadback = CPUReadbackSetting.cpuidWords
    /// How far the running VM may grow (vCPU hotplug, virtio-mem); nil: it stays at its boot size.
    public var hotplug: Hotplug?

    /// QEMU's vCPUs: all the VM may ever have. The guest boots `vcpus` of them (`maxcpus=`) and the
    /// agent onlines more as the pod grows. (ACPI vCPU hotplug is not used: under TCG, QEMU 7.2
    /// aborts when it starts a vCPU thread after the translation cache's regions are used up.)
    public var vcpuThreads: Int { max(vcpus, hotplug?.maxVCPUs ?? vcpus) }

    /// The kernel command line with what growth needs: the vCPUs to boot, and hot-plugged memory
    /// onlined to ZONE_MOVABLE while the kernel's own memory suffices, so it can be unplugged again.
    public var fullKernelCommandLine: String {
        guard hotplug != nil else { return kernelCommandLine }
        return "\(kernelCommandLine) maxcpus=\(vcpus) memory_hotplug.online_policy=auto-movable"
    }

    /// TCG's cache with room for the vCPUs the guest has not onlined: each vCPU thread holds one
    /// 2 MiB region of it from its start, and an untouched region costs the host nothing.
    public var effectiveTranslationCacheMiB: Int? {
        translationCacheMiB.map { $0 + 2 * (vcpuThreads - vcpus) }
    }

    /// The ceiling of a VM that grows while it runs: vCPUs up to `maxVCPUs` (ACPI CPU hotplug) and
    /// memory up to `maxMemoryMiB` (boot memory plus one virtio-mem device of the difference, which
    /// costs the host nothing until the guest plugs it).
    public struct Hotplug: Sendable, Equatable {
        public var maxVCPUs: Int
        public var maxMemoryMiB: Int
        public init(maxVCPUs: Int, maxMemoryMiB: Int) {
            self.maxVCPUs = maxVCPUs
            self.maxMemoryMiB = maxMemoryMiB
        }

        /// virtio-mem's plug granularity (the device's block size).
        public static let blockMiB = 2
        /// The guest's memory hotplug unit (Linux's memory block on x86-64): the device's size is a
        /// multiple of it.
        public static let sectionMiB = 128

        /// The virtio-mem device's size for a VM booted with `bootMemoryMiB`: what is left up to the
        /// ceiling, in whole guest memory blocks (0: no device).
        public func deviceMiB(bootMemoryMiB: Int) -> Int {
            max(0, (maxMemoryMiB - bootMemoryMiB) / Self.sectionMiB * Self.sectionMiB)
        }
    }

    public init(
        owner: Owner, accelerator: Accelerator, kernel: String, image: GuestImage, kernelCommandLine: String,
        agentChannel: AgentChannel, consoleLog: String
    ) {
        self.owner = owner
        self.accelerator = accelerator
        self.kernel = kernel
        self.image = image
        self.kernelCommandLine = kernelCommandLine
        self.agentChannel = agentChannel
        self.consoleLog = consoleLog
    }

    /// Domain names are derived from the pod's namespace and id, so `delete` can always find the VM
    /// again: `swiftkata-<namespace>-<pod id>-<16 hex digits of SHA-256 of namespace/pod id>`. The
    /// readable part alone is ambiguous (`a-b`/`c` and `a`/`b-c`); the hash makes two pods' names
    /// differ, so one pod's start never replaces another pod's VM. Warm-pool VMs are
    /// `swiftkata_pool-<entry>`: no pod's name can take that form, and they keep it after a pod claims them.
    public static func domainName(for owner: Owner) -> String {
        if owner.pooled { return "\(warmPoolDomainPrefix)\(owner.podID)" }
        let hash = Digest.sha256Hex("\(owner.namespace)/\(owner.podID)").prefix(16)
        return "swiftkata-\(owner.namespace)-\(owner.podID)-\(hash)"
    }

    public static let warmPoolDomainPrefix = "swiftkata_pool-"
}

/// Why a VM description cannot become a domain.
public enum VMDescriptionError: Error, Equatable, CustomStringConvertible {
    case invalid(field: String, reason: String)

    public var description: String {
        switch self {
        case .invalid(let field, let reason): "\(field): \(reason)"
        }
    }
}
