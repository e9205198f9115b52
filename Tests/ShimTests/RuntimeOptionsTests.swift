import ContainerdAPI
import Foundation
import SwiftProtobuf
import Testing

@testable import Shim

/// containerd's runtime options select the configuration: `ConfigPath` (a file) or, from containerd
/// 1.7, `ConfigBody` (the text itself), checked at `start` where containerd shows the error.
@Suite struct RuntimeOptionsTests {
    static func anyBytes(path: String = "", body: String = "") throws -> [UInt8] {
        var options = Runtimeoptions_V1_Options()
        options.configPath = path
        options.configBody = Data(body.utf8)
        return try Google_Protobuf_Any(message: options, typePrefix: "types.containerd.io").serializedBytes()
    }

    static func withBundle(_ body: (String) throws -> Void) throws {
        let bundle = FileManager.default.temporaryDirectory.appendingPathComponent("swiftkata-options-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: bundle, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: bundle) }
        try body(bundle)
    }

    @Test func pathAndBodyAreDecoded() throws {
        #expect(RuntimeOptions(anyBytes: try Self.anyBytes(path: "/etc/k.toml")) == RuntimeOptions(configPath: "/etc/k.toml"))
        #expect(RuntimeOptions(anyBytes: try Self.anyBytes(body: "[agent]\n")) == RuntimeOptions(configBody: "[agent]\n"))
        #expect(RuntimeOptions(anyBytes: []) == RuntimeOptions())
        #expect(RuntimeOptions(anyBytes: [0xFF, 0x01]) == RuntimeOptions())
    }

    @Test func bodyIsKeptInTheBundleAndWinsOverThePath() throws {
        try Self.withBundle { bundle in
            let options = RuntimeOptions(configPath: "/nonexistent.toml", configBody: "[hypervisor]\nshared_fs = \"9p\"\n")
            let path = try ShimStart.checkConfiguration(options, bundle: bundle, environment: [:])
            #expect(path == "\(bundle)/swiftkata-configuration.toml")
            #expect(try String(contentsOfFile: "\(bundle)/swiftkata-configuration.toml", encoding: .utf8) == options.configBody)
        }
    }

    @Test func badBodyIsReportedWithItsLineAndKey() throws {
        try Self.withBundle { bundle in
            let options = RuntimeOptions(configBody: "[hypervisor]\nvcpus = 0\n")
            #expect {
                try ShimStart.checkConfiguration(options, bundle: bundle, environment: [:])
            } throws: { error in
                "\(error)".contains("\(bundle)/swiftkata-configuration.toml:2") && "\(error)".contains("hypervisor.vcpus")
            }
        }
    }

    @Test func withoutOptionsThePathOrTheDefaultIsUsed() throws {
        try Self.withBundle { bundle in
            #expect(try ShimStart.checkConfiguration(RuntimeOptions(), bundle: bundle, environment: ["SWIFTKATA_CONFIG": ""]) == nil)
            let file = "\(bundle)/mine.toml"
            try "[agent]\n".write(toFile: file, atomically: true, encoding: .utf8)
            #expect(try ShimStart.checkConfiguration(RuntimeOptions(configPath: file), bundle: bundle, environment: [:]) == file)
            #expect(!FileManager.default.fileExists(atPath: "\(bundle)/swiftkata-configuration.toml"))
        }
    }
}
