import Hypervisor
import SwiftKataConfig

/// Which files to check besides the host's own, and whether to redo the KVM probe.
public struct CheckOptions: Sendable {
    /// `--config`; nil: `$SWIFTKATA_CONFIG`, then /etc/swiftkata/configuration.toml (which may be absent).
    public var configurationPath: String?
    public var containerdConfigurationPath: String
    public var containerdSocketPath: String
    /// Forget this boot's cached KVM probe results and boot a guest again.
    public var freshKVMProbe: Bool

    public init(
        configurationPath: String? = nil,
        containerdConfigurationPath: String = "/etc/containerd/config.toml",
        containerdSocketPath: String = "/run/containerd/containerd.sock",
        freshKVMProbe: Bool = false
    ) {
        self.configurationPath = configurationPath
        self.containerdConfigurationPath = containerdConfigurationPath
        self.containerdSocketPath = containerdSocketPath
        self.freshKVMProbe = freshKVMProbe
    }
}

/// Checks whether this host can run swiftkata pods, and how (KVM or TCG, vsock or virtio-serial).
public struct HostCheck: Sendable {
    public var host: HostEnvironment
    public var options: CheckOptions

    public init(host: HostEnvironment, options: CheckOptions = CheckOptions()) {
        self.host = host
        self.options = options
    }

    /// Runs every check in order; a configuration that does not load is reported, and the other
    /// checks then use the defaults.
    public func run() async -> CheckReport {
        let (path, mayBeMissing) = Configuration.resolvePath(runtimeOptionPath: options.configurationPath, environment: host.environment)
        var configuration = Configuration()
        var results: [CheckResult] = []
        do {
            configuration = try host.loadConfiguration(path, mayBeMissing)
            let usedDefaults = mayBeMissing && !host.canAccess(path, [])
            results.append(.pass("configuration", usedDefaults ? "defaults (no \(path))" : path))
        } catch {
            let place = error.line.map { "\(path) line \($0)" } ?? path
            results.append(
                .fail(
                    "configuration", "\(error.description) (other checks use the defaults)",
                    fix: "edit \(place)\(error.key.map { " (\($0))" } ?? ""); omitted settings take their defaults"))
        }
        let checks = HostChecks(host: host, configuration: configuration, configurationPath: path, options: options)
        results.append(checks.cpuVirtualization())
        results.append(checks.kvmDevice())
        let (kvmBoot, accelerator) = await checks.kvmBoot()
        results.append(kvmBoot)
        results.append(checks.qemuBinary())
        results.append(checks.qemuConfinement())
        results.append(checks.tcg())
        let (vsock, transport) = checks.vhostVsock()
        results.append(vsock)
        results.append(checks.libvirt())
        results.append(checks.libvirtCapabilities())
        results.append(checks.virtlogd())
        results.append(checks.virtiofsd())
        results.append(checks.guestKernel())
        results.append(checks.guestImage())
        results.append(checks.warmPool())
        results.append(checks.memoryMerging())
        results.append(checks.containerdBinary())
        results.append(checks.containerdRunning())
        results.append(checks.containerdCRIPlugin())
        results.append(checks.containerdRuntime())
        results.append(checks.shim())
        results.append(checks.podNetworkTools())
        results.append(checks.cgroups())
        return CheckReport(checks: results, accelerator: accelerator, transport: transport)
    }
}

/// The individual checks, over one host and one configuration (see the extensions).
struct HostChecks {
    let host: HostEnvironment
    let configuration: Configuration
    /// The configuration file's path, for fixes that name a setting.
    let configurationPath: String
    let options: CheckOptions

    /// "set key = value in [table] of <file>".
    func setting(_ assignment: String, in table: String) -> String {
        "set \(assignment) in [\(table)] of \(configurationPath)"
    }
}
