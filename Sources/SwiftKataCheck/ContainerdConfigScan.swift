/// Names under which containerd and Kubernetes know swiftkata.
public enum SwiftKataNames {
    /// containerd's runtime type; containerd maps it to the binary `containerd-shim-swiftkata-v2`.
    public static let runtimeType = "io.containerd.swiftkata.v2"
    public static let shimBinary = "containerd-shim-swiftkata-v2"
    /// The CRI runtime handler (a Kubernetes RuntimeClass's `handler`).
    public static let criHandler = "kata-runtime"
}

/// What containerd's config.toml says about swiftkata, found by a tolerant line scan: containerd's file
/// uses TOML that SwiftKataConfig's reader does not take (inline tables, arrays of tables), and only a
/// few keys matter here.
public struct ContainerdRuntimeRegistration: Sendable, Equatable {
    public enum Handler: Sendable, Equatable {
        /// No `runtimes.kata-runtime` under a CRI plugin table.
        case missing
        /// The handler exists with this `runtime_type` (nil: none set).
        case present(runtimeType: String?)
    }

    public var handler: Handler
    /// `disabled_plugins` names the CRI plugin.
    public var criDisabled: Bool

    /// Whether CRI can run pods with swiftkata under the `kata-runtime` handler.
    public var isRegistered: Bool { handler == .present(runtimeType: SwiftKataNames.runtimeType) && !criDisabled }

    /// Scans containerd's config.toml text (versions 1, 2 and 3 of its layout).
    public init(scanning text: String) {
        var table = ""
        var handler = Handler.missing
        var criDisabled = false
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: true) {
            let line = stripComment(rawLine).trimmingWhitespace()
            if line.hasPrefix("[") {
                table = normalizedKey(line.filter { $0 != "[" && $0 != "]" })
                if isHandlerPath(table), case .missing = handler { handler = .present(runtimeType: nil) }
                continue
            }
            guard let equals = line.firstIndex(of: "=") else { continue }
            let key = normalizedKey(line[..<equals])
            let value = line[line.index(after: equals)...].trimmingWhitespace()
            let path = table.isEmpty ? key : "\(table).\(key)"
            if key == "disabled_plugins" && (value.contains("\"cri\"") || value.contains("'cri'") || value.contains("grpc.v1.cri")) {
                criDisabled = true
            } else if isHandlerPath(path), value.hasPrefix("{") {
                // kata-runtime = { runtime_type = "…" } (an inline table)
                let inner = value.dropFirst().split(separator: ",").compactMap { pair -> String? in
                    let parts = pair.split(separator: "=", maxSplits: 1)
                    guard parts.count == 2, normalizedKey(parts[0]) == "runtime_type" else { return nil }
                    return stringValue(parts[1].filter { $0 != "}" })
                }
                handler = .present(runtimeType: inner.first)
            } else if path.hasSuffix(".runtime_type"), isHandlerPath(String(path.dropLast(".runtime_type".count))) {
                handler = .present(runtimeType: stringValue(value))
            }
        }
        self.handler = handler
        self.criDisabled = criDisabled
    }
}

/// A dotted TOML key or table name without quotes or spaces: `plugins."io.containerd.grpc.v1.cri"` →
/// `plugins.io.containerd.grpc.v1.cri`.
private func normalizedKey(_ text: some StringProtocol) -> String {
    String(text.filter { $0 != "\"" && $0 != "'" && !$0.isWhitespace })
}

/// `….runtimes.kata-runtime` under a CRI plugin (`io.containerd.grpc.v1.cri`, `cri`, `io.containerd.cri.v1.runtime`).
private func isHandlerPath(_ path: String) -> Bool {
    path.hasSuffix("runtimes.\(SwiftKataNames.criHandler)") && path.contains("cri")
}

/// The line up to a `#` that is not inside a string.
private func stripComment(_ line: Substring) -> Substring {
    var quote: Character?
    for index in line.indices {
        let character = line[index]
        if let open = quote {
            if character == open { quote = nil }
        } else if character == "\"" || character == "'" {
            quote = character
        } else if character == "#" {
            return line[..<index]
        }
    }
    return line
}

/// The contents of a quoted TOML string value.
private func stringValue(_ text: some StringProtocol) -> String? {
    let trimmed = text.trimmingWhitespace()
    guard let quote = trimmed.first, quote == "\"" || quote == "'" else { return nil }
    return String(trimmed.dropFirst().prefix { $0 != quote })
}
