import ContainerdAPI
import SwiftProtobuf

/// The runtime options containerd passes to `start` (stdin) and `Create`: an `Any` holding
/// `runtimeoptions.v1.Options` for non-runc runtimes (the `options` table of the runtime in
/// containerd's configuration).
struct RuntimeOptions: Sendable, Equatable {
    /// `ConfigPath`: the configuration file to read instead of the default.
    var configPath: String?
    /// `ConfigBody` (containerd 1.7 and later): the configuration's text itself. Wins over `ConfigPath`.
    var configBody: String?

    init(configPath: String? = nil, configBody: String? = nil) {
        self.configPath = configPath
        self.configBody = configBody
    }

    init(anyBytes: [UInt8]) {
        self.init()
        guard !anyBytes.isEmpty, let any = try? Google_Protobuf_Any(serializedBytes: anyBytes) else { return }
        self.init(any: any)
    }

    init(any: Google_Protobuf_Any) {
        self.init()
        guard any.typeURL.hasSuffix("runtimeoptions.v1.Options"),
            let options = try? Runtimeoptions_V1_Options(serializedBytes: any.value)
        else { return }
        configPath = options.configPath.isEmpty ? nil : options.configPath
        configBody = options.configBody.isEmpty ? nil : String(decoding: options.configBody, as: UTF8.self)
    }

    /// Where `start` keeps a `ConfigBody` (the bundle is containerd's, removed with the container).
    static func configBodyFile(bundle: String) -> String { "\(bundle)/swiftkata-configuration.toml" }
}
