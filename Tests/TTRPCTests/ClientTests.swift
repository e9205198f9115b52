import Foundation
import NIOCore
import SwiftProtobuf
import TTRPC
import TTRPCTestSupport
import Testing

/// How the client treats a server that may be hostile (the guest agent is one).
@Suite("Client")
struct ClientTests {
    /// Runs `body` with a client connected to a raw server peer.
    private func withRawServer(_ body: (TTRPCClient, RawPeer) async throws -> Void) async throws {
        let dir = TempDirectory()
        defer { dir.remove() }
        let path = dir.file("c.sock")
        let box = ClientBox()
        let peer = try await RawPeer.acceptOne(unixSocketPath: path) {
            await box.set(try await TTRPCClient.connect(unixSocketPath: path))
        }
        let client = await box.client!
        do {
            try await body(client, peer)
        } catch {
            await client.close()
            await peer.close()
            throw error
        }
        await client.close()
        await peer.close()
    }

    private actor ClientBox {
        var client: TTRPCClient?
        func set(_ client: TTRPCClient) { self.client = client }
    }

    private func nextRequest(_ peer: RawPeer) async throws -> (UInt32, TTRPCRequest) {
        for await frame in peer.frames {
            if case .frame(let header, let payload) = frame, header.type == .request {
                return (header.streamID, try TTRPCRequest(decoding: payload))
            }
        }
        throw TTRPCError(.unavailable, "closed")
    }

    private func respond(_ peer: RawPeer, stream: UInt32, _ response: TTRPCResponse) async throws {
        var buffer = ByteBuffer()
        response.encode(into: &buffer)
        try await peer.send(streamID: stream, type: .response, payload: buffer)
    }

    private func echo(_ client: TTRPCClient, _ bytes: [UInt8], timeout: Duration? = nil) async throws -> ByteBuffer {
        try await client.call(service: "s", method: "m", payload: ByteBuffer(bytes: bytes), timeout: timeout)
    }

    @Test func streamIDsAreOddAndIncreasingAndDeadlineAndMetadataTravel() async throws {
        try await withRawServer { client, peer in
            async let first = client.call(service: "svc", method: "A", payload: ByteBuffer(bytes: [1]), metadata: ["X-Key": "v"], timeout: .seconds(30))
            let (id1, request1) = try await nextRequest(peer)
            #expect(id1 == 1)
            #expect(request1.service == "svc" && request1.method == "A")
            #expect(request1.metadata["x-key"] == ["v"])
            #expect(request1.timeoutNanos > 29_000_000_000 && request1.timeoutNanos <= 30_000_000_000)
            try await respond(peer, stream: id1, TTRPCResponse(payload: ByteBuffer(bytes: [9])))
            #expect(try await first == ByteBuffer(bytes: [9]))

            for expected in [3, 5] as [UInt32] {
                async let call = echo(client, [])
                let (id, request) = try await nextRequest(peer)
                #expect(id == expected)
                #expect(request.timeoutNanos == 0)
                try await respond(peer, stream: id, TTRPCResponse(payload: ByteBuffer()))
                _ = try await call
            }
        }
    }

    @Test func bogusAndMalformedRepliesFailOnlyTheirOwnCall() async throws {
        try await withRawServer { client, peer in
            async let a = outcome { try await echo(client, [1]) }
            let (idA, _) = try await nextRequest(peer)
            async let b = outcome { try await echo(client, [2]) }
            let (idB, _) = try await nextRequest(peer)
            // A reply to a stream nobody asked for is dropped.
            try await respond(peer, stream: 99, TTRPCResponse(payload: ByteBuffer(bytes: [6])))
            try await peer.send(streamID: idA, type: .response, payload: ByteBuffer(bytes: [0x12, 0x7f]))
            try await respond(peer, stream: idB, TTRPCResponse(payload: ByteBuffer(bytes: [2])))
            guard case .failure(let error as TTRPCError) = await a else {
                Issue.record("malformed reply accepted")
                return
            }
            #expect(error.code == .dataLoss)
            #expect(try await b.get() == ByteBuffer(bytes: [2]))
        }
    }

    @Test func errorStatusReachesTheCaller() async throws {
        try await withRawServer { client, peer in
            async let call = outcome { try await echo(client, []) }
            let (id, _) = try await nextRequest(peer)
            try await respond(peer, stream: id, TTRPCResponse(status: TTRPCError(.notFound, "c1: not found"), payload: ByteBuffer()))
            guard case .failure(let error as TTRPCError) = await call else {
                Issue.record("call should fail")
                return
            }
            #expect(error == TTRPCError(.notFound, "c1: not found"))
        }
    }

    @Test func oversizedReplyFailsThatCallAndTheConnectionSurvives() async throws {
        try await withRawServer { client, peer in
            async let big = outcome { try await echo(client, [1]) }
            let (id, _) = try await nextRequest(peer)
            var header = ByteBuffer()
            header.writeTTRPCHeader(TTRPCFrameHeader(length: UInt32(TTRPCWire.maxPayloadSize + 1), streamID: id, type: .response))
            try await peer.send(header)
            try await peer.send(ByteBuffer(repeating: 0, count: TTRPCWire.maxPayloadSize + 1))
            guard case .failure(let error as TTRPCError) = await big else {
                Issue.record("oversized reply accepted")
                return
            }
            #expect(error.code == .resourceExhausted)
            async let small = echo(client, [2])
            let (id2, _) = try await nextRequest(peer)
            try await respond(peer, stream: id2, TTRPCResponse(payload: ByteBuffer(bytes: [2])))
            #expect(try await small == ByteBuffer(bytes: [2]))
        }
    }

    @Test func deadlineFailsTheCallAndALateReplyIsDropped() async throws {
        try await withRawServer { client, peer in
            let start = ContinuousClock.now
            async let slow = outcome { try await echo(client, [1], timeout: .milliseconds(100)) }
            let (id, _) = try await nextRequest(peer)
            guard case .failure(let error as TTRPCError) = await slow else {
                Issue.record("deadline not enforced")
                return
            }
            #expect(error.code == .deadlineExceeded)
            #expect(ContinuousClock.now - start < .seconds(5))
            try await respond(peer, stream: id, TTRPCResponse(payload: ByteBuffer(bytes: [1])))
            async let next = echo(client, [2])
            let (id2, _) = try await nextRequest(peer)
            try await respond(peer, stream: id2, TTRPCResponse(payload: ByteBuffer(bytes: [2])))
            #expect(try await next == ByteBuffer(bytes: [2]))
        }
    }

    @Test func droppedConnectionFailsEveryPendingCall() async throws {
        try await withRawServer { client, peer in
            async let a = outcome { try await echo(client, [1]) }
            async let b = outcome { try await echo(client, [2]) }
            _ = try await nextRequest(peer)
            _ = try await nextRequest(peer)
            await peer.close()
            for result in [await a, await b] {
                guard case .failure(let error as TTRPCError) = result else {
                    Issue.record("pending call survived a closed connection")
                    continue
                }
                #expect(error == .closed)
            }
            await #expect(throws: TTRPCError.self) { try await echo(client, [3]) }
        }
    }

    @Test func oversizedRequestIsRefusedLocally() async throws {
        try await withRawServer { client, peer in
            let error = await #expect(throws: TTRPCError.self) {
                try await echo(client, [UInt8](repeating: 0, count: TTRPCWire.maxPayloadSize))
            }
            #expect(error?.code == .resourceExhausted)
            async let small = echo(client, [2])
            let (id, _) = try await nextRequest(peer)
            #expect(id == 1)
            try await respond(peer, stream: id, TTRPCResponse(payload: ByteBuffer(bytes: [2])))
            #expect(try await small == ByteBuffer(bytes: [2]))
        }
    }

    @Test func cancellingTheCallerFailsTheCall() async throws {
        try await withRawServer { client, peer in
            let task = Task { try await echo(client, [1]) }
            _ = try await nextRequest(peer)
            task.cancel()
            let error = await #expect(throws: TTRPCError.self) { try await task.value }
            #expect(error?.code == .canceled)
        }
    }
}

/// The outcome of an async throwing call, as a value.
func outcome<T: Sendable>(_ body: @Sendable () async throws -> T) async -> Result<T, any Error> {
    do { return .success(try await body()) } catch { return .failure(error) }
}
