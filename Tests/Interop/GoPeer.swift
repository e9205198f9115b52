import Foundation
import TTRPCTestSupport

/// containerd's Go ttrpc, as a separate process: `Tests/Interop/ttrpc-peer`, built offline from
/// Debian's golang-go and golang-github-containerd-ttrpc-dev by `build-peer.sh`.
enum GoPeer {
    private static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Builds the peer once per test process (the script skips up-to-date builds); a failure to build
    /// fails the tests: interop must never be skipped silently.
    static let binary: Result<String, PeerError> = {
        let script = repoRoot.appendingPathComponent("Tests/Interop/build-peer.sh").path
        let (status, output) = run(["/bin/sh", script, repoRoot.appendingPathComponent(".build/interop").path])
        guard status == 0, let path = output.split(separator: "\n").last.map(String.init) else {
            return .failure(PeerError(description: "building the Go ttrpc peer failed (\(status)): \(output)"))
        }
        return .success(path)
    }()

    struct PeerError: Error, CustomStringConvertible { var description: String }

    /// Runs a command to completion and returns its exit status and combined output.
    static func run(_ arguments: [String]) -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: arguments[0])
        process.arguments = Array(arguments.dropFirst())
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        do { try process.run() } catch { return (-1, "\(error)") }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// A running `ttrpc-peer serve`; stops when `stop()` closes its stdin.
    final class Server: Sendable {
        let socketPath: String
        private let process: Process
        private let stdin: Pipe

        init(socketPath: String) throws {
            self.socketPath = socketPath
            process = Process()
            process.executableURL = URL(fileURLWithPath: try GoPeer.binary.get())
            process.arguments = ["serve", "-socket", socketPath]
            stdin = Pipe()
            let stdout = Pipe()
            process.standardInput = stdin
            process.standardOutput = stdout
            try process.run()
            let line = stdout.fileHandleForReading.readLine()
            guard line == "READY" else {
                process.terminate()
                throw PeerError(description: "Go peer did not start: \(line ?? "EOF")")
            }
        }

        func stop() {
            try? stdin.fileHandleForWriting.close()
            process.waitUntilExit()
        }
    }
}

extension FileHandle {
    func readLine() -> String? {
        var bytes: [UInt8] = []
        while let chunk = try? read(upToCount: 1), let byte = chunk.first {
            if byte == UInt8(ascii: "\n") { break }
            bytes.append(byte)
        }
        return bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self)
    }
}
