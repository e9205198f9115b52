import Foundation
import NIOCore
import SwiftProtobuf
import TTRPC
import TTRPCTestSupport
import Testing

/// The transports besides a listening path: an inherited listening fd (the shim daemon's fd 3) and
/// already-connected streams in either role (vsock connections, virtio-serial ports).
@Suite("Transports")
struct TransportTests {
    private func echo(_ client: TTRPCClient, _ text: String) async throws -> String {
        let reply = try await client.call(
            service: EchoService.name, method: "Echo", request: Google_Protobuf_BytesValue(Data(text.utf8)),
            responseType: Google_Protobuf_BytesValue.self)
        return String(decoding: reply.value, as: UTF8.self)
    }

    @Test func servesOnAnInheritedListeningDescriptor() async throws {
        let dir = TempDirectory()
        defer { dir.remove() }
        let path = dir.file("fd3.sock")
        // What `start` does before spawning the daemon: bind and listen, then hand over the fd.
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        #expect(fd >= 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            _ = path.utf8CString.withUnsafeBytes { raw.copyMemory(from: $0) }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        #expect(bound == 0)
        #expect(listen(fd, 16) == 0)

        let listener = try await TTRPCServer(services: [EchoService.definition()]).listen(inheritedDescriptor: fd)
        let client = try await TTRPCClient.connect(unixSocketPath: path)
        #expect(try await echo(client, "via fd 3") == "via fd 3")
        await client.close()
        await listener.close()
    }

    @Test(arguments: [false, true])
    func runsOverAnAlreadyConnectedStreamInEitherRole(asNonSocketStream: Bool) async throws {
        var fds: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        let server = TTRPCServer(services: [EchoService.definition()])
        let connection: TTRPCConnection
        let client: TTRPCClient
        if asNonSocketStream {
            // The agent's code path on virtio-serial: requests and replies on two descriptors.
            connection = try await server.serve(inputDescriptor: fds[0], outputDescriptor: dup(fds[0]))
            client = try await TTRPCClient.connect(streamDescriptor: fds[1])
        } else {
            connection = try await server.serve(connectedSocket: fds[0])
            client = try await TTRPCClient.connect(connectedSocket: fds[1])
        }
        #expect(try await echo(client, "over a connected stream") == "over a connected stream")
        async let many = withThrowingTaskGroup(of: String.self) { group in
            for index in 0..<20 { group.addTask { try await echo(client, "call \(index)") } }
            return try await group.reduce(into: [String]()) { $0.append($1) }
        }
        #expect(try await many.count == 20)
        await client.close()
        try await connection.closeFuture.get()
    }

    @Test func listeningSocketIsOwnerOnly() async throws {
        let dir = TempDirectory()
        defer { dir.remove() }
        let listener = try await TTRPCServer(services: []).listen(unixSocketPath: dir.file("s.sock"))
        var info = stat()
        #expect(stat(dir.file("s.sock"), &info) == 0)
        #expect(info.st_mode & 0o777 == 0o600)
        await listener.close()
        #expect(access(dir.file("s.sock"), F_OK) != 0, "closing removes the socket file")
    }
}
