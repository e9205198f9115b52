import AgentAPI
import Foundation
import NIOCore
import SwiftProtobuf
import TTRPC
import Testing

@Suite("Agent API")
struct AgentAPITests {
    @Test func serviceNameCarriesTheMajorVersion() {
        #expect(Swiftkata_Agent_V1_AgentWire.serviceName == "swiftkata.agent.v1.Agent")
    }

    /// The generated code follows agent.proto: every rpc the proto declares, in its order, and nothing else.
    @Test func generatedMethodsAreTheProtosRPCs() throws {
        let proto = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Sources/AgentAPI/agent.proto").standardizedFileURL
        let text = try String(contentsOf: proto, encoding: .utf8)
        let declared = text.split(separator: "\n").compactMap { line -> String? in
            let words = line.split(whereSeparator: { $0 == " " || $0 == "(" })
            guard words.first == "rpc", words.count > 1 else { return nil }
            return String(words[1])
        }
        #expect(!declared.isEmpty)
        #expect(Swiftkata_Agent_V1_AgentWire.methodNames == declared)
    }

    @Test func largestOutputChunkFitsInOneTTRPCFrame() throws {
        var reply = Swiftkata_Agent_V1_ReadOutputResponse()
        reply.data = Data(repeating: 0x41, count: AgentProtocol.maxOutputChunk)
        reply.eof = true
        let encoded: [UInt8] = try reply.serializedBytes()
        #expect(encoded.count + 64 < TTRPCWire.maxPayloadSize)
    }

    @Test func createContainerCarriesTheSpecAsOpaqueJSON() throws {
        var request = Swiftkata_Agent_V1_CreateContainerRequest()
        request.containerID = "c1"
        request.ociSpec = Data(#"{"ociVersion":"1.0.2"}"#.utf8)
        request.terminal = true
        let decoded = try Swiftkata_Agent_V1_CreateContainerRequest(serializedBytes: try request.serializedBytes() as [UInt8])
        #expect(decoded == request)
    }

    /// The agent encodes ReadOutput replies by hand from its buffers; they must read back as the
    /// generated message does, also when the data arrives in several parts or is empty.
    @Test(arguments: [[], ["hello"], ["split ", "across ", "three buffers"]])
    func handEncodedOutputDecodesAsTheGeneratedMessage(parts: [String]) throws {
        for eof in [false, true] {
            let reply = ReadOutputReply.encode(data: parts.map { ByteBuffer(string: $0) }, eof: eof)
            // The data goes out in the buffers it came in, after one small header.
            #expect(reply.parts.count == (parts.isEmpty ? 0 : parts.count + 1) + (eof ? 1 : 0))
            let encoded = reply.joined
            let decoded = try Swiftkata_Agent_V1_ReadOutputResponse(serializedBuffer: encoded)
            #expect(decoded.data == Data(parts.joined().utf8))
            #expect(decoded.eof == eof)
            var generated = Swiftkata_Agent_V1_ReadOutputResponse()
            generated.data = Data(parts.joined().utf8)
            generated.eof = eof
            #expect(try generated.serializedBuffer() == encoded)
        }
    }
}

/// Who may talk to the agent over vsock: the host's root only.
@Suite struct VsockPeerPolicyTests {
    @Test func onlyTheHostFromAPrivilegedPort() {
        #expect(AgentProtocol.isTrustedVsockPeer(contextID: 2, port: 1023))
        #expect(AgentProtocol.isTrustedVsockPeer(contextID: 2, port: 600))
        // An unprivileged local user's socket gets an ephemeral port above 1023.
        #expect(!AgentProtocol.isTrustedVsockPeer(contextID: 2, port: 1024))
        #expect(!AgentProtocol.isTrustedVsockPeer(contextID: 2, port: 49152))
        // Other VMs (and the hypervisor or local context ids) never.
        #expect(!AgentProtocol.isTrustedVsockPeer(contextID: 3, port: 1023))
        #expect(!AgentProtocol.isTrustedVsockPeer(contextID: 0, port: 100))
        #expect(!AgentProtocol.isTrustedVsockPeer(contextID: 1, port: 100))
        #expect(!AgentProtocol.isTrustedVsockPeer(contextID: UInt32.max, port: 100))
    }
}
