/// The shim's command line, in Go `flag` syntax as containerd writes it:
/// `-namespace ns -address addr -publish-binary exe [-id id] [-bundle path] [-debug] [-socket path] [start|delete]`.
/// `-f v`, `-f=v`, `--f v` and bare booleans are accepted; the action comes after the flags.
public struct ShimArguments: Sendable, Equatable {
    public enum Action: String, Sendable, Equatable {
        case start, delete
        /// An operator's command (not containerd's): destroy every warm-pool VM (`make uninstall`).
        case drainPool = "drain-pool"
        /// No action: run as the long-lived daemon.
        case daemon
    }

    public var namespace = ""
    public var address = ""
    public var publishBinary = ""
    public var id = ""
    public var bundle = ""
    public var socket: String?
    public var debug = false
    public var version = false
    public var action = Action.daemon

    public init() {}

    /// A command line the shim cannot run with.
    public struct Invalid: Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String
    }

    private static let valueFlags: Set<String> = ["namespace", "address", "publish-binary", "id", "bundle", "socket"]
    private static let booleanFlags: Set<String> = ["debug", "v"]

    public init(parsing arguments: [String]) throws(Invalid) {
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            guard argument.hasPrefix("-"), argument != "-", argument != "--" else { break }
            var name = String(argument.drop { $0 == "-" })
            var value: String?
            if let equals = name.firstIndex(of: "=") {
                value = String(name[name.index(after: equals)...])
                name = String(name[..<equals])
            }
            index += 1
            if Self.booleanFlags.contains(name) {
                let flag = value.map { ["1", "t", "true", "T", "TRUE", "True"].contains($0) } ?? true
                if name == "debug" { debug = flag } else { version = flag }
                continue
            }
            guard Self.valueFlags.contains(name) else { throw Invalid(description: "unknown flag -\(name)") }
            if value == nil {
                guard index < arguments.count else { throw Invalid(description: "flag -\(name) needs a value") }
                value = arguments[index]
                index += 1
            }
            switch name {
            case "namespace": namespace = value!
            case "address": address = value!
            case "publish-binary": publishBinary = value!
            case "id": id = value!
            case "bundle": bundle = value!
            default: socket = value!
            }
        }
        if index < arguments.count, arguments[index] == "--" { index += 1 }
        if index < arguments.count {
            guard let parsed = Action(rawValue: arguments[index]), parsed != .daemon else {
                throw Invalid(description: "unknown action \"\(arguments[index])\" (expected start, delete or drain-pool)")
            }
            action = parsed
            index += 1
        }
        guard index == arguments.count else { throw Invalid(description: "unexpected arguments: \(arguments[index...].joined(separator: " "))") }
        guard version || action == .drainPool || !namespace.isEmpty else { throw Invalid(description: "-namespace is required") }
    }
}
