/// swiftkata's configuration (`/etc/swiftkata/configuration.toml`). Every default lives here, so an
/// empty or missing default file means "all defaults".
public struct Configuration: Sendable, Equatable {
    /// How pod VMs are built and started.
    public struct HypervisorSection: Sendable, Equatable {
        public var libvirtURI = "qemu:///system"
        public var accelerator = AcceleratorSetting.auto
        public var machine = "pc"
        /// The VM's base size, for the guest kernel and the agent: a pod's own CPU and memory limits
        /// (from containerd's sandbox annotations) come on top.
        public var vcpus = 1
        public var memoryMiB = 256
        /// The largest VM a pod may get (0: as many vCPUs as the guest kernel supports, and the host's
        /// memory). A pod asking for more fails to start, saying so.
        public var maxVCPUs = 0
        public var maxMemoryMiB = 0
        /// A running VM grows with its containers' limits (vCPU hotplug, virtio-mem) up to the
        /// maximum, and shrinks back when they are lowered. Off: it keeps its boot size.
        public var hotplug = true
        /// Pod annotations `io.swiftkata.hypervisor.<name>` that may set this pod's VM size, by name
        /// (`vcpus`, `memory_mib`; Kata's `enable_annotations`). Any other annotation is ignored.
        public var enableAnnotations: [String] = []
        /// What `enableAnnotations` may name.
        public static let annotatableSettings = ["vcpus", "memory_mib"]
        public var kernel = "/usr/share/swiftkata/vmlinux"
        /// The guest's root: an ext4 image mounted read-only from a virtio-blk disk, or an initramfs.
        public var image = "/usr/share/swiftkata/swiftkata-rootfs.img"
        /// Appended to `baseKernelParameters`.
        public var kernelParameters = ""
        public var sharedFilesystem = SharedFilesystemSetting.virtioFS
        public var virtiofsd = "/usr/lib/qemu/virtiofsd"
        public var emulator = "/usr/bin/qemu-system-x86_64"
        /// Guest pages freed after boot go back to the host (virtio-balloon free page reporting).
        public var freePageReporting = true
        /// TCG only: QEMU's translated-code cache in MiB; 0 = QEMU's default (grows up to 1 GiB).
        public var tcgTranslationCacheMiB = 32
        /// How libvirt reads back each started guest's CPU.
        public var libvirtCPUReadback = CPUReadbackSetting.cpuidWords
        /// Start pods even where QEMU runs as root or without its seccomp sandbox (libvirt's
        /// qemu.conf `user`, `seccomp_sandbox`): a QEMU escape is then host root. Off: such pods fail.
        public var allowUnconfinedQEMU = false

        /// What the guest kernel always gets: serial console, fast TCG boot, the TSC as its clock
        /// (with more than one vCPU the kernel would distrust an emulated non-Intel CPU's TSC and
        /// read the emulated HPET instead), seeded RNG, and a halt
        /// (not a reboot) on panic so a crashed guest ends its domain.
        public static let baseKernelParameters = "console=ttyS0 quiet noapictimer no_timer_check acpi=noirq random.trust_cpu=on tsc=reliable panic=-1"

        public var kernelCommandLine: String {
            kernelParameters.isEmpty ? Self.baseKernelParameters : "\(Self.baseKernelParameters) \(kernelParameters)"
        }
    }

    /// How the shim reaches the guest agent.
    public struct AgentSection: Sendable, Equatable {
        public var transport = AgentTransportSetting.auto
        /// From domain creation to the agent's first answer, at most, however the VM progresses.
        public var dialTimeoutMilliseconds = 60_000
        /// A booting VM that makes no progress this long (QEMU uses no CPU time, the console stays
        /// silent) has failed.
        public var bootStallMilliseconds = 5_000
        /// Longest wait for one agent call (except the calls that wait for a process by design).
        public var callTimeoutMilliseconds = 30_000
        /// An operator's shell in the guest's own root (`swiftkata-ctl console`); the agent refuses
        /// it in a VM booted without it.
        public var debugConsole = false
    }

    /// The shim's own behaviour.
    public struct RuntimeSection: Sendable, Equatable {
        public var debug = false
        /// Apply the OCI spec's seccomp profile inside the guest.
        public var guestSeccomp = true
        /// Per-pod host state (shared directories, agent sockets, console logs).
        public var stateDirectory = "/run/swiftkata"
    }

    /// Pod VMs booted ahead of demand (Kata's "VM cache"): a pod claims a running VM instead of
    /// booting one, and the pool boots a replacement in the background.
    public struct PoolSection: Sendable, Equatable {
        /// How many warm VMs this configuration keeps (0: off). Each costs an idle pod VM's memory.
        public var size = 0
        /// The largest `size` accepted.
        public static let maximumSize = 16
    }

    public var hypervisor = HypervisorSection()
    public var agent = AgentSection()
    public var runtime = RuntimeSection()
    public var pool = PoolSection()

    public init() {}

    /// The default location of the configuration file.
    public static let defaultPath = "/etc/swiftkata/configuration.toml"
    /// Environment variable naming another configuration file.
    public static let pathEnvironmentVariable = "SWIFTKATA_CONFIG"
}

/// A configuration that cannot be used, naming the file and key at fault.
public struct ConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    public var path: String
    public var line: Int?
    public var key: String?
    public var message: String

    public var description: String {
        var location = path
        if let line { location += ":\(line)" }
        if let key { return "\(location): \(key): \(message)" }
        return "\(location): \(message)"
    }
}
