import Hypervisor
import HypervisorLibvirt
import SwiftKataConfig
import SwiftKataOS

/// Everything swiftkata-check reads from the host, as replaceable closures: `HostEnvironment.live`
/// looks at the real machine, tests feed fake files and probe results.
public struct HostEnvironment: Sendable {
    /// Up to `limit` bytes from the start of a file, or nil when it cannot be read.
    public var readFile: @Sendable (_ path: String, _ limit: Int) -> [UInt8]?
    /// Whether `path` exists and this process has `access` to it (`[]`: exists).
    public var canAccess: @Sendable (_ path: String, _ access: FileAccess) -> Bool
    /// The names (`/proc/<pid>/comm`) of running processes.
    public var processNames: @Sendable () -> Set<String>
    /// Runs a program to completion; nil when it cannot start or does not finish within a few seconds.
    public var run: @Sendable (_ executable: String, _ arguments: [String]) -> CommandOutput?
    /// Whether a unix stream socket accepts connections.
    public var acceptsConnections: @Sendable (_ socketPath: String) -> Bool
    /// Connects to libvirt at `uri` and reads its driver and versions.
    public var libvirt: @Sendable (_ uri: String) -> Result<LibvirtFacts, HostProbeError>
    /// The KVM boot probe for a kernel and image (cached per host boot and kernel, shared with the shim);
    /// `fresh` forgets this boot's cached results first.
    public var probeKVM: @Sendable (_ kernel: String, _ image: String, _ fresh: Bool) async -> KVMProbeOutcome
    /// Loads swiftkata's configuration file.
    public var loadConfiguration: @Sendable (_ path: String, _ mayBeMissing: Bool) throws(ConfigurationError) -> Configuration
    /// The process environment (`PATH`, `SWIFTKATA_CONFIG`).
    public var environment: [String: String]
    /// The names in a directory, without `.` and `..`; nil when it cannot be read.
    public var listDirectory: @Sendable (_ path: String) -> [String]? = { _ in nil }
    /// Whether libvirt's QEMU user may open `path` read-write, by the file's owner, group and mode
    /// and that user's groups; nil when there is no such user or file.
    public var qemuUserCanOpen: @Sendable (_ path: String) -> Bool? = { _ in true }
    /// Whether libvirt keeps its cached QEMU capabilities for `emulator` across two lookups (false:
    /// it re-probes QEMU every time, which costs every domain start seconds).
    public var libvirtCapabilitiesStable: @Sendable (_ uri: String, _ emulator: String) -> Result<Bool, HostProbeError> = { _, _ in .success(true) }
    /// The running containerd's CRI status (conditions, and each handler's runtime type from its
    /// effective configuration), asked over `socketPath`.
    public var criStatus: @Sendable (_ socketPath: String) -> Result<CRIRuntimeStatus, HostProbeError> = { _ in
        .failure(HostProbeError("not asked"))
    }

    public init(
        readFile: @escaping @Sendable (String, Int) -> [UInt8]?,
        canAccess: @escaping @Sendable (String, FileAccess) -> Bool,
        processNames: @escaping @Sendable () -> Set<String>,
        run: @escaping @Sendable (String, [String]) -> CommandOutput?,
        acceptsConnections: @escaping @Sendable (String) -> Bool,
        libvirt: @escaping @Sendable (String) -> Result<LibvirtFacts, HostProbeError>,
        probeKVM: @escaping @Sendable (String, String, Bool) async -> KVMProbeOutcome,
        loadConfiguration: @escaping @Sendable (String, Bool) throws(ConfigurationError) -> Configuration,
        environment: [String: String]
    ) {
        self.readFile = readFile
        self.canAccess = canAccess
        self.processNames = processNames
        self.run = run
        self.acceptsConnections = acceptsConnections
        self.libvirt = libvirt
        self.probeKVM = probeKVM
        self.loadConfiguration = loadConfiguration
        self.environment = environment
    }

    /// A file's text (up to `limit` bytes), decoded as UTF-8.
    func readText(_ path: String, limit: Int = 1 << 20) -> String? {
        readFile(path, limit).map { String(decoding: $0, as: UTF8.self) }
    }

    /// The first executable `name` in `$PATH`, then in `extraDirectories`.
    func findExecutable(_ name: String, extraDirectories: [String] = []) -> String? {
        let path = environment["PATH"] ?? ""
        let directories = path.split(separator: ":").map(String.init) + extraDirectories
        return directories.lazy.map { "\($0)/\(name)" }.first { canAccess($0, .execute) }
    }
}

/// Access to check with `HostEnvironment.canAccess`; the empty set asks whether the file exists.
public struct FileAccess: OptionSet, Sendable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    public static let read = FileAccess(rawValue: 4)
    public static let write = FileAccess(rawValue: 2)
    public static let execute = FileAccess(rawValue: 1)
}

/// A finished program's exit status and its standard output and error, interleaved.
public struct CommandOutput: Sendable, Equatable {
    public var status: Int32
    public var output: String

    public init(status: Int32, output: String) {
        self.status = status
        self.output = output
    }
}

/// What libvirt says about itself: driver, libvirt version, hypervisor version.
public typealias LibvirtFacts = LibvirtVersions

/// Whether a guest booted under KVM, and why (not).
public struct KVMProbeOutcome: Sendable, Equatable {
    public var usable: Bool
    public var reason: String

    public init(usable: Bool, reason: String) {
        self.usable = usable
        self.reason = reason
    }
}

/// A host probe that failed, with the message of whatever failed (e.g. libvirt's).
public struct HostProbeError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
