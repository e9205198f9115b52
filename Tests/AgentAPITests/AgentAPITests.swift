import AgentAPI
import Foundation
import NIOCore
import SwiftProtobuf
import Testing
import TTRPC

@Suite("Agent API")
struct AgentAPITests {
    @Test func serviceNameCarriesTheMajorVersion() {
        struct Probe: Swiftkata_Agent_V1_AgentService {
            func health(_ request: Swiftkata_Agent_V1_HealthRequest, context: TTRPCCallContext) async throws -> Swiftkata_Agent_V1_HealthResponse { .init() }
            func createSandbox(_ request: Swiftkata_Agent_V1_CreateSandboxRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty { .init() }
            func destroySandbox(_ request: Swiftkata_Agent_V1_DestroySandboxRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty { .init() }
            func createContainer(_ request: Swiftkata_Agent_V1_CreateContainerRequest, context: TTRPCCallContext) async throws -> Swiftkata_Agent_V1_CreateContainerResponse { .init() }
            func startContainer(_ request: Swiftkata_Agent_V1_StartContainerRequest, context: TTRPCCallContext) async throws -> Swiftkata_Agent_V1_StartContainerResponse { .init() }
            func removeContainer(_ request: Swiftkata_Agent_V1_RemoveContainerRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty { .init() }
            func pauseContainer(_ request: Swiftkata_Agent_V1_PauseContainerRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty { .init() }
            func resumeContainer(_ request: Swiftkata_Agent_V1_ResumeContainerRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty { .init() }
            func updateContainer(_ request: Swiftkata_Agent_V1_UpdateContainerRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty { .init() }
            func statsContainer(_ request: Swiftkata_Agent_V1_StatsContainerRequest, context: TTRPCCallContext) async throws -> Swiftkata_Agent_V1_StatsContainerResponse { .init() }
            func listProcesses(_ request: Swiftkata_Agent_V1_ListProcessesRequest, context: TTRPCCallContext) async throws -> Swiftkata_Agent_V1_ListProcessesResponse { .init() }
            func execProcess(_ request: Swiftkata_Agent_V1_ExecProcessRequest, context: TTRPCCallContext) async throws -> Swiftkata_Agent_V1_ExecProcessResponse { .init() }
            func signalProcess(_ request: Swiftkata_Agent_V1_SignalProcessRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty { .init() }
            func waitProcess(_ request: Swiftkata_Agent_V1_WaitProcessRequest, context: TTRPCCallContext) async throws -> Swiftkata_Agent_V1_WaitProcessResponse { .init() }
            func resizeTty(_ request: Swiftkata_Agent_V1_ResizeTtyRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty { .init() }
            func writeStdin(_ request: Swiftkata_Agent_V1_WriteStdinRequest, context: TTRPCCallContext) async throws -> Swiftkata_Agent_V1_WriteStdinResponse { .init() }
            func closeStdin(_ request: Swiftkata_Agent_V1_CloseStdinRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty { .init() }
            func readOutput(_ request: Swiftkata_Agent_V1_ReadOutputRequest, context: TTRPCCallContext) async throws -> Swiftkata_Agent_V1_ReadOutputResponse { .init() }
            func getOOMEvent(_ request: Swiftkata_Agent_V1_GetOOMEventRequest, context: TTRPCCallContext) async throws -> Swiftkata_Agent_V1_OOMEvent { .init() }
        }
        #expect(Probe.ttrpcServiceName == "swiftkata.agent.v1.Agent")
        #expect(Probe().serviceDefinition.methods.count == 19)
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
            var encoded = ByteBuffer()
            let buffers = parts.map { ByteBuffer(string: $0) }
            if !parts.isEmpty { encoded.writeProtobufBytesField(1, parts: buffers) }
            if eof { encoded.writeProtobufVarintField(2, 1) }
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
