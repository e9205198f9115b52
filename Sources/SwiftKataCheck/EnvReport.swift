import Hypervisor
import SwiftKataConfig

/// `swiftkata-check --env`: what a bug report should carry. The versions of every component, the
/// effective configuration with where each value came from, the paths in use, and the accelerator,
/// transport and warm-pool decisions (from the checks just run).
public struct EnvReport: Sendable {
    /// Named sections of `key`, `value` and, for configuration values, their source.
    public struct Entry: Sendable, Equatable {
        public var key: String
        public var value: String
        public var source: String?
    }

    public var sections: [(name: String, entries: [Entry])]

    /// Gathers the report on `host`, after `report` (the checks) ran with the same options.
    public static func gather(host: HostEnvironment, options: CheckOptions, report: CheckReport) -> EnvReport {
        let (path, mayBeMissing) = Configuration.resolvePath(runtimeOptionPath: options.configurationPath, environment: host.environment)
        let configuration = (try? host.loadConfiguration(path, mayBeMissing)) ?? Configuration()
        let text = host.readText(path)
        let defined = text.map(Configuration.definedKeys(in:)) ?? [:]
        let hypervisor = configuration.hypervisor

        let firstLine = { (executable: String, arguments: [String]) -> String in
            host.run(executable, arguments)?.output.split(separator: "\n").first.map(String.init) ?? "not found"
        }
        let libvirt: String =
            switch host.libvirt(hypervisor.libvirtURI) {
            case .success(let facts): "libvirt \(facts.libvirt), \(facts.driver) \(facts.hypervisor ?? "version unknown")"
            case .failure(let error): "unreachable: \(error.message)"
            }
        let containerd = host.findExecutable("containerd", extraDirectories: ["/usr/bin"]).map { firstLine($0, ["--version"]) } ?? "not found"
        let shim = host.findExecutable(SwiftKataNames.shimBinary, extraDirectories: ["/usr/local/bin", "/usr/bin"]) ?? "not found"
        let components: [Entry] = [
            Entry(key: "swiftkata", value: SwiftKataVersion.string),
            Entry(key: "guest kernel", value: "\(kernelRelease(host: host, path: hypervisor.kernel)) (\(hypervisor.kernel))"),
            Entry(key: "guest image", value: hypervisor.image),
            Entry(key: "qemu", value: firstLine(hypervisor.emulator, ["--version"])),
            Entry(key: "virtiofsd", value: firstLine(hypervisor.virtiofsd, ["--version"])),
            Entry(key: "libvirt", value: libvirt),
            Entry(key: "containerd", value: containerd),
        ]
        let paths: [Entry] = [
            Entry(key: "configuration", value: text == nil ? "\(path) (absent: defaults)" : path),
            Entry(key: "shim", value: shim),
            Entry(key: "state directory", value: configuration.runtime.stateDirectory),
            Entry(key: "containerd config", value: options.containerdConfigurationPath),
            Entry(key: "containerd socket", value: options.containerdSocketPath),
        ]
        let settings = configuration.entries.map { entry in
            Entry(key: entry.key, value: entry.value, source: defined[entry.key].map { "\(path):\($0)" } ?? "default")
        }
        let detail = { (name: String) in report.check(named: name)?.detail ?? "not checked" }
        let decisions: [Entry] = [
            Entry(key: "accelerator", value: "\(report.accelerator.rawValue) (\(detail("kvm-boot")))"),
            Entry(key: "agent transport", value: "\(report.transport.rawValue) (\(detail("vhost-vsock")))"),
            Entry(key: "warm pool", value: detail("warm-pool")),
            Entry(key: "qemu confinement", value: detail("qemu-confinement")),
        ]
        return EnvReport(sections: [("components", components), ("paths", paths), ("configuration", settings), ("decisions", decisions)])
    }

    /// The release of the guest kernel file: the "Linux version X" string every kernel image carries.
    static func kernelRelease(host: HostEnvironment, path: String) -> String {
        guard let bytes = host.readFile(path, 64 << 20) else { return "unreadable" }
        let marker = Array("Linux version ".utf8)
        var index = 0
        while index + marker.count < bytes.count {
            if bytes[index] == marker[0], bytes[index..<(index + marker.count)].elementsEqual(marker) {
                let start = index + marker.count
                let end = bytes[start...].prefix(64).firstIndex(of: UInt8(ascii: " ")) ?? start
                return String(decoding: bytes[start..<end], as: UTF8.self)
            }
            index += 1
        }
        return "unknown (no version string)"
    }

    /// `[section]` headers and `key = value` lines; configuration lines end in `# source`.
    public var text: String {
        sections.map { section in
            "[\(section.name)]\n"
                + section.entries.map { entry in
                    "\(entry.key) = \(entry.value)" + (entry.source.map { "  # \($0)" } ?? "")
                }.joined(separator: "\n")
        }.joined(separator: "\n\n")
    }

    /// `{"components": {...}, "paths": {...}, "configuration": {"key": {"value", "source"}}, "decisions": {...}}`.
    public var json: String {
        let body = sections.map { section in
            let entries = section.entries.map { entry in
                let value = entry.source.map { "{\"value\":\(jsonString(entry.value)),\"source\":\(jsonString($0))}" } ?? jsonString(entry.value)
                return "\(jsonString(entry.key)):\(value)"
            }
            return "\(jsonString(section.name)):{\(entries.joined(separator: ","))}"
        }
        return "{\(body.joined(separator: ","))}"
    }
}

/// swiftkata's release, printed in the env report and bug reports.
public enum SwiftKataVersion {
    public static let string = "0.2.0-dev"
}
