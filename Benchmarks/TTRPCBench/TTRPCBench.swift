import ArgumentParser
import Foundation
import NIOCore
import NIOPosix
import SwiftProtobuf
import TTRPC
import TTRPCTestSupport

/// Compares Swift ttrpc (client → server, separate processes) with containerd's Go ttrpc, measured
/// in the same run on the same machine, and prints both side by side.
@main
struct TTRPCBench: AsyncParsableCommand {
    static func main() async {
        // Swift tasks run on NIO's event loops, as Go's goroutines share its netpoller's threads: the
        // library's own cost, without a thread hop per call. This needs the dynamically linked build
        // (`make bench-ttrpc`): the shipped binaries' static link hides the hook NIO looks up, and
        // they run their tasks on Swift's default executor. TTRPC_BENCH_EXECUTOR=default measures
        // that configuration (its server inherits the variable).
        if !usesDefaultExecutor {
            guard NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor() else {
                FileHandle.standardError.write(
                    Data("ttrpc-bench: NIO could not take over Swift's global executor (TTRPC_BENCH_EXECUTOR=default runs without)\n".utf8))
                Foundation.exit(1)
            }
        }
        do {
            var command = try parseAsRoot()
            if var command = command as? any AsyncParsableCommand { try await command.run() } else { try command.run() }
        } catch {
            exit(withError: error)
        }
    }

    static let configuration = CommandConfiguration(
        commandName: "ttrpc-bench",
        abstract: "Unary calls/s and MB/s over a unix socket: Swift ttrpc vs Go ttrpc.",
        subcommands: [Compare.self, Serve.self, Client.self],
        defaultSubcommand: Compare.self)
}

struct BenchOptions: ParsableArguments {
    @Option(help: "Comma-separated payload sizes in bytes.") var payloads = "0,1024,65536"
    @Option(help: "Comma-separated numbers of concurrent callers on one connection.") var concurrency = "1,16"
    @Option(help: "Seconds measured per row.") var duration = 2.0

    var payloadSizes: [Int] { payloads.split(separator: ",").compactMap { Int($0) } }
    var callerCounts: [Int] { concurrency.split(separator: ",").compactMap { Int($0) } }
}

/// One measured row, in the same shape the Go peer prints.
struct BenchRow: Codable {
    var payload: Int
    var concurrency: Int
    var calls: Int
    var seconds: Double
    var calls_per_sec: Double
    var mb_per_sec: Double
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Serve the echo service (Swift) until stdin closes.")
    @Option var socket: String

    func run() async throws {
        let server = TTRPCServer(services: [EchoService.definition()])
        let listener = try await server.listen(unixSocketPath: socket, replacingExisting: true)
        FileHandle.standardOutput.write(Data("READY\n".utf8))
        // Exit when the parent closes our stdin; a plain thread, since Swift tasks run on the event loops.
        Thread.detachNewThread {
            while let _ = readLine() {}
            Foundation.exit(0)
        }
        try await listener.closeFuture.get()
    }
}

struct Client: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Benchmark a running server with the Swift client.")
    @Option var socket: String
    @OptionGroup var options: BenchOptions

    func run() async throws {
        for payload in options.payloadSizes {
            for callers in options.callerCounts {
                let row = try await measure(socket: socket, payload: payload, callers: callers, seconds: options.duration)
                print(String(decoding: try JSONEncoder().encode(row), as: UTF8.self))
            }
        }
    }
}

/// Runs `callers` concurrent loops of Echo calls on one connection for `seconds` after a warm-up.
func measure(socket: String, payload: Int, callers: Int, seconds: Double) async throws -> BenchRow {
    let client = try await TTRPCClient.connect(unixSocketPath: socket)
    defer { Task { await client.close() } }
    let request = Google_Protobuf_BytesValue(Data(repeating: 0x5a, count: payload))
    let requestBuffer = try request.serializedBuffer()

    func loop(until end: ContinuousClock.Instant) async throws -> Int {
        var calls = 0
        while ContinuousClock.now < end {
            let reply = try await client.call(service: EchoService.name, method: "Echo", payload: requestBuffer)
            guard reply.readableBytes == requestBuffer.readableBytes else {
                throw TTRPCError(.dataLoss, "echo returned \(reply.readableBytes) bytes, sent \(requestBuffer.readableBytes)")
            }
            calls += 1
        }
        return calls
    }

    func run(for duration: Double) async throws -> (Int, Double) {
        let start = ContinuousClock.now
        let end = start + .milliseconds(Int(duration * 1000))
        let calls = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<callers { group.addTask { try await loop(until: end) } }
            return try await group.reduce(0, +)
        }
        let elapsed = ContinuousClock.now - start
        return (calls, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
    }

    _ = try await run(for: min(1, max(0.2, seconds / 10)))
    let (calls, elapsed) = try await run(for: seconds)
    return BenchRow(
        payload: payload, concurrency: callers, calls: calls, seconds: elapsed,
        calls_per_sec: Double(calls) / elapsed,
        mb_per_sec: Double(calls * payload * 2) / 1e6 / elapsed)
}

struct Compare: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Swift vs Go, side by side (default).")
    @OptionGroup var options: BenchOptions
    @Option(help: "The Go reference peer (built by Tests/Interop/build-peer.sh).") var goPeer = ".build/interop/ttrpc-peer"

    func run() async throws {
        guard FileManager.default.isExecutableFile(atPath: goPeer) else {
            throw ValidationError("Go reference peer not found at \(goPeer); build it with Tests/Interop/build-peer.sh")
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ttrpc-bench-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }

        // Swift client → Swift server, the server in its own process like Go's.
        let socket = dir.appendingPathComponent("swift.sock").path
        let server = Process()
        server.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL
        server.arguments = ["serve", "--socket", socket]
        let serverIn = Pipe(), serverOut = Pipe()
        server.standardInput = serverIn
        server.standardOutput = serverOut
        try server.run()
        defer { try? serverIn.fileHandleForWriting.close(); server.waitUntilExit() }
        let readyLine = try await onThread { try serverOut.fileHandleForReading.readLine() }
        guard readyLine == "READY" else {
            throw ValidationError("Swift bench server did not start")
        }
        var swiftRows: [BenchRow] = []
        for payload in options.payloadSizes {
            for callers in options.callerCounts {
                swiftRows.append(try await measure(socket: socket, payload: payload, callers: callers, seconds: options.duration))
            }
        }

        // Go client → Go server, same rows.
        let go = Process()
        go.executableURL = URL(fileURLWithPath: goPeer)
        go.arguments = [
            "bench", "-payloads", options.payloads, "-concurrency", options.concurrency,
            "-duration", "\(Int(options.duration * 1000))ms",
        ]
        let goOut = Pipe()
        go.standardOutput = goOut
        try go.run()
        let goData = try await onThread { goOut.fileHandleForReading.readDataToEndOfFile() }
        go.waitUntilExit()
        guard go.terminationStatus == 0 else { throw ValidationError("Go bench failed (exit \(go.terminationStatus))") }
        let goRows = String(decoding: goData, as: UTF8.self).split(separator: "\n")
            .compactMap { try? JSONDecoder().decode(BenchRow.self, from: Data($0.utf8)) }

        print("ttrpc unary Echo over a unix socket, one connection, client and server in separate processes")
        print("Swift tasks on \(usesDefaultExecutor ? "Swift's default executor (as in the shipped shim and agent)" : "NIO's event loops")")
        print(
            pad("payload", 8) + pad("callers", 8) + pad("swift calls/s", 15) + pad("go calls/s", 13)
                + pad("ratio", 7) + pad("swift MB/s", 12) + pad("go MB/s", 10))
        for row in swiftRows {
            guard let goRow = goRows.first(where: { $0.payload == row.payload && $0.concurrency == row.concurrency }) else { continue }
            print(
                pad("\(row.payload)", 8) + pad("\(row.concurrency)", 8)
                    + pad(String(format: "%.0f", row.calls_per_sec), 15) + pad(String(format: "%.0f", goRow.calls_per_sec), 13)
                    + pad(String(format: "%.2f", row.calls_per_sec / goRow.calls_per_sec), 7)
                    + pad(String(format: "%.1f", row.mb_per_sec), 12) + pad(String(format: "%.1f", goRow.mb_per_sec), 10))
        }
    }

    private func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
    }
}

extension FileHandle {
    /// Reads one line (without the newline), or nil at end of file.
    func readLine() throws -> String? {
        var bytes: [UInt8] = []
        while let chunk = try read(upToCount: 1), let byte = chunk.first {
            if byte == UInt8(ascii: "\n") { return String(decoding: bytes, as: UTF8.self) }
            bytes.append(byte)
        }
        return bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self)
    }
}

/// Runs blocking I/O on its own thread: Swift tasks here run on NIO's event loops, which must not block.
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
    }
}

/// TTRPC_BENCH_EXECUTOR=default: Swift tasks stay on Swift's default executor, as in the shipped binaries.
let usesDefaultExecutor = ProcessInfo.processInfo.environment["TTRPC_BENCH_EXECUTOR"] == "default"
