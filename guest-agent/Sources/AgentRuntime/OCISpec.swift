import FoundationEssentials

/// The parts of the OCI runtime spec (config.json, runtime-spec 1.x) the agent applies.
/// Unknown fields are ignored, as the spec requires.
public struct OCISpec: Codable, Sendable, Equatable {
    public var ociVersion: String?
    public var process: OCIProcess?
    public var root: Root?
    public var hostname: String?
    public var mounts: [Mount]?
    public var annotations: [String: String]?
    public var linux: Linux?

    public struct Root: Codable, Sendable, Equatable {
        public var path: String
        public var readonly: Bool?
    }

    public struct Mount: Codable, Sendable, Equatable {
        public var destination: String
        public var type: String?
        public var source: String?
        public var options: [String]?
    }

    public struct Linux: Codable, Sendable, Equatable {
        public var namespaces: [Namespace]?
        public var resources: OCIResources?
        public var cgroupsPath: String?
        public var seccomp: OCISeccomp?
        public var maskedPaths: [String]?
        public var readonlyPaths: [String]?
        public var sysctl: [String: String]?
        public var devices: [Device]?
        public var uidMappings: [IDMapping]?
        public var gidMappings: [IDMapping]?
    }

    /// A device node the container gets (`linux.devices`): a privileged container lists every device
    /// of the node it was specified on.
    public struct Device: Codable, Sendable, Equatable {
        public var path: String
        public var type: String
        public var major: Int64?
        public var minor: Int64?
    }

    public struct Namespace: Codable, Sendable, Equatable {
        public var type: String
        public var path: String?
    }

    public struct IDMapping: Codable, Sendable, Equatable {
        public var containerID: UInt32
        public var hostID: UInt32
        public var size: UInt32
    }

    public static func decode(_ bytes: some Collection<UInt8>) throws(SpecError) -> OCISpec {
        do {
            return try JSONDecoder().decode(OCISpec.self, from: Data(bytes))
        } catch {
            throw .malformed("config.json does not decode: \(error)")
        }
    }
}

/// An OCI process (the container's init, or an exec's `spec`).
public struct OCIProcess: Codable, Sendable, Equatable {
    public var terminal: Bool?
    public var user: User?
    public var args: [String]?
    public var env: [String]?
    public var cwd: String?
    public var capabilities: Capabilities?
    public var rlimits: [Rlimit]?
    public var noNewPrivileges: Bool?
    public var oomScoreAdj: Int?
    public var consoleSize: ConsoleSize?

    public struct User: Codable, Sendable, Equatable {
        public var uid: UInt32?
        public var gid: UInt32?
        public var umask: UInt32?
        public var additionalGids: [UInt32]?
    }

    public struct Capabilities: Codable, Sendable, Equatable {
        public var bounding: [String]?
        public var effective: [String]?
        public var inheritable: [String]?
        public var permitted: [String]?
        public var ambient: [String]?
    }

    public struct Rlimit: Codable, Sendable, Equatable {
        public var type: String
        public var hard: UInt64
        public var soft: UInt64
    }

    public struct ConsoleSize: Codable, Sendable, Equatable {
        public var height: UInt32
        public var width: UInt32
    }

    public static func decode(_ bytes: some Collection<UInt8>) throws(SpecError) -> OCIProcess {
        do {
            return try JSONDecoder().decode(OCIProcess.self, from: Data(bytes))
        } catch {
            throw .malformed("process spec does not decode: \(error)")
        }
    }
}

/// OCI LinuxResources: the limits applied to the container's cgroup.
public struct OCIResources: Codable, Sendable, Equatable {
    public var memory: Memory?
    public var cpu: CPU?
    public var pids: Pids?

    public struct Memory: Codable, Sendable, Equatable {
        public var limit: Int64?
        public var reservation: Int64?
        public var swap: Int64?
    }

    public struct CPU: Codable, Sendable, Equatable {
        public var shares: UInt64?
        public var quota: Int64?
        public var period: UInt64?
        public var cpus: String?
        public var mems: String?
    }

    public struct Pids: Codable, Sendable, Equatable {
        public var limit: Int64
    }

    public static func decode(_ bytes: some Collection<UInt8>) throws(SpecError) -> OCIResources {
        do {
            return try JSONDecoder().decode(OCIResources.self, from: Data(bytes))
        } catch {
            throw .malformed("resources do not decode: \(error)")
        }
    }
}

/// OCI seccomp profile.
public struct OCISeccomp: Codable, Sendable, Equatable {
    public var defaultAction: String
    public var defaultErrnoRet: UInt32?
    public var architectures: [String]?
    public var syscalls: [Rule]?

    public init(defaultAction: String, defaultErrnoRet: UInt32?, architectures: [String]?, syscalls: [Rule]?) {
        self.defaultAction = defaultAction
        self.defaultErrnoRet = defaultErrnoRet
        self.architectures = architectures
        self.syscalls = syscalls
    }

    public struct Rule: Codable, Sendable, Equatable {
        public var names: [String]
        public var action: String
        public var errnoRet: UInt32?
        public var args: [Arg]?

        public init(names: [String], action: String, errnoRet: UInt32?, args: [Arg]?) {
            self.names = names
            self.action = action
            self.errnoRet = errnoRet
            self.args = args
        }
    }

    public struct Arg: Codable, Sendable, Equatable {
        public var index: UInt32
        public var value: UInt64
        public var valueTwo: UInt64?
        public var op: String

        public init(index: UInt32, value: UInt64, valueTwo: UInt64?, op: String) {
            self.index = index
            self.value = value
            self.valueTwo = valueTwo
            self.op = op
        }
    }
}

/// Why a spec cannot be applied. The message names the field and the reason.
public enum SpecError: Error, Equatable, CustomStringConvertible {
    case malformed(String)
    case invalid(field: String, reason: String)
    case unsupported(field: String, reason: String)

    public var description: String {
        switch self {
        case .malformed(let message): message
        case .invalid(let field, let reason): "\(field): \(reason)"
        case .unsupported(let field, let reason): "\(field): not supported: \(reason)"
        }
    }
}
