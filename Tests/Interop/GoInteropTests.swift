import Foundation
import NIOCore
import SwiftProtobuf
import TTRPC
import TTRPCTestSupport
import Testing

/// Wire compatibility with containerd's Go ttrpc, both ways.
@Suite("Interop with Go ttrpc", .serialized)
struct GoInteropTests {
    // MARK: Go client → Swift server

    @Test func goClientPassesEveryCheckAgainstTheSwiftServer() async throws {
        let dir = TempDirectory()
        defer { dir.remove() }
        let server = TTRPCServer(services: [EchoService.definition()])
        let listener = try await server.listen(unixSocketPath: dir.file("swift.sock"))
        defer { Task { await listener.close() } }
        let binary = try GoPeer.binary.get()
        let path = dir.file("swift.sock")
        let (status, output) = try await onThread { GoPeer.run([binary, "check-server", "-socket", path]) }
        let passed = output.split(separator: "\n").filter { $0.hasPrefix("PASS ") }
        let failed = output.split(separator: "\n").filter { $0.hasPrefix("FAIL ") }
        #expect(status == 0, "\(output)")
        #expect(failed.isEmpty, "\(failed)")
        #expect(passed.count == 14, "\(output)")
        for check in [
            "echo-concurrent-50", "echo-max-frame", "echo-oversized-rejected", "echo-after-oversized",
            "metadata-roundtrip", "sleep-deadline-propagated", "sleep-server-deadline-exceeded",
        ] {
            #expect(passed.contains { $0 == "PASS \(check)" }, "missing check \(check)")
        }
    }

    // MARK: Swift client → Go server

    private func withGoServer(_ body: (TTRPCClient) async throws -> Void) async throws {
        let dir = TempDirectory()
        defer { dir.remove() }
        let server = try await onThread { try GoPeer.Server(socketPath: dir.file("go.sock")) }
        defer { server.stop() }
        let client = try await TTRPCClient.connect(unixSocketPath: server.socketPath)
        do {
            try await body(client)
        } catch {
            await client.close()
            throw error
        }
        await client.close()
    }

    private func echo(_ client: TTRPCClient, _ data: Data) async throws -> Data {
        try await client.call(
            service: EchoService.name, method: "Echo", request: Google_Protobuf_BytesValue(data),
            responseType: Google_Protobuf_BytesValue.self
        ).value
    }

    private func fail(_ client: TTRPCClient, _ text: String) async -> TTRPCError? {
        do {
            _ = try await client.call(
                service: EchoService.name, method: "Fail", request: Google_Protobuf_StringValue(text),
                responseType: Google_Protobuf_StringValue.self)
            return nil
        } catch {
            return error as? TTRPCError
        }
    }

    @Test func unaryCallsAndEmptyPayloads() async throws {
        try await withGoServer { client in
            let hello = try await echo(client, Data("hello".utf8))
            #expect(hello == Data("hello".utf8))
            let empty = try await echo(client, Data())
            #expect(empty == Data())
        }
    }

    @Test func errorStatusesKeepCodeAndMessage() async throws {
        try await withGoServer { client in
            let notFound = await fail(client, "5:container abc: not found")
            #expect(notFound == TTRPCError(.notFound, "container abc: not found"))
            let invalid = await fail(client, "3:bad spec")
            #expect(invalid == TTRPCError(.invalidArgument, "bad spec"))
            let precondition = await fail(client, "9:task must be stopped: failed precondition")
            #expect(precondition == TTRPCError(.failedPrecondition, "task must be stopped: failed precondition"))
        }
    }

    @Test func unknownServiceAndMethod() async throws {
        try await withGoServer { client in
            let method = await #expect(throws: TTRPCError.self) {
                try await client.call(service: EchoService.name, method: "Nope", payload: ByteBuffer())
            }
            #expect(method?.code == .unimplemented)
            let service = await #expect(throws: TTRPCError.self) {
                try await client.call(service: "no.Such", method: "Echo", payload: ByteBuffer())
            }
            #expect(service?.code == .unimplemented)
        }
    }

    @Test func metadataTravelsAsAMultimap() async throws {
        try await withGoServer { client in
            var metadata: TTRPCMetadata = ["X-Test": "a"]
            metadata.add("x-test", "b")
            let reply = try await client.call(
                service: EchoService.name, method: "Metadata", request: Google_Protobuf_StringValue("x-test"),
                responseType: Google_Protobuf_StringValue.self, metadata: metadata)
            #expect(reply.value == "a,b")
        }
    }

    @Test func fiftyConcurrentCallsOnOneConnection() async throws {
        try await withGoServer { client in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<50 {
                    group.addTask {
                        let payload = Data("call-\(index)-".utf8) + Data(repeating: UInt8(index), count: index * 100)
                        let reply = try await echo(client, payload)
                        #expect(reply == payload, "call \(index)")
                    }
                }
                try await group.waitForAll()
            }
        }
    }

    @Test func largestFrameGoesThroughAndAnOversizedOneIsRefusedWithoutKillingTheConnection() async throws {
        try await withGoServer { client in
            // 4194264 payload bytes make a request frame of exactly 4 MiB with this service and method.
            let payload = Data(repeating: 0xab, count: 4_194_264)
            let reply = try await echo(client, payload)
            #expect(reply == payload)
            let error = await #expect(throws: TTRPCError.self) {
                try await echo(client, Data(repeating: 1, count: 4_194_265))
            }
            #expect(error?.code == .resourceExhausted)
            #expect(try await echo(client, Data([1])) == Data([1]))
        }
    }

    @Test func deadlineTravelsAsTimeoutNano() async throws {
        try await withGoServer { client in
            let reply = try await client.call(
                service: EchoService.name, method: "Sleep", request: Google_Protobuf_StringValue("50ms"),
                responseType: Google_Protobuf_StringValue.self, timeout: .seconds(2))
            #expect(reply.value.hasPrefix("slept deadline="))
            let remaining = Int(reply.value.dropFirst("slept deadline=".count)) ?? -1
            #expect(remaining > 0 && remaining <= 2000)
            let late = await #expect(throws: TTRPCError.self) {
                try await client.call(
                    service: EchoService.name, method: "Sleep", request: Google_Protobuf_StringValue("3s"),
                    responseType: Google_Protobuf_StringValue.self, timeout: .milliseconds(200))
            }
            #expect(late?.code == .deadlineExceeded)
            #expect(try await echo(client, Data([2])) == Data([2]))
        }
    }
}

/// Runs blocking work (process I/O) off the cooperative pool.
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
    }
}
