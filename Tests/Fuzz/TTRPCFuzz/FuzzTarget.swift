import AgentAPI
import AgentRuntime
import ContainerdAPI
import Dispatch
import NIOCore
import SwiftProtobuf
import TTRPC
import TTRPCTestSupport

/// One fuzz input: the first byte picks how the rest is chunked, the rest is a byte stream as a
/// ttrpc peer would send it. Every frame goes through the same parser and request router the server
/// uses; requests are dispatched to real handlers; responses and the agent replies the shim decodes
/// from the (untrusted) guest are decoded.
enum FuzzTarget {
    /// A small payload limit so short inputs reach the oversized-frame path too.
    static let maxPayloadSize = 4096

    static let router: TTRPCRequestRouter = {
        var echo = TTRPCServiceDefinition(name: EchoService.name)
        for (name, handler) in EchoService.definition().methods where name != "Sleep" {
            echo.addGatheringMethod(name, handler)
        }
        var decode = TTRPCServiceDefinition(name: "swiftkata.fuzz.Decode")
        decode.addMethod("CreateTask") { (request: Containerd_Task_V2_CreateTaskRequest, _) in Google_Protobuf_Empty() }
        decode.addMethod("CreateContainer") { (request: Swiftkata_Agent_V1_CreateContainerRequest, _) in Google_Protobuf_Empty() }
        decode.addMethod("Forward") { (request: Containerd_Services_Events_Ttrpc_V1_ForwardRequest, _) in Google_Protobuf_Empty() }
        return TTRPCRequestRouter(services: [echo, decode])
    }()

    static let agentReplyTypes: [any SwiftProtobuf.Message.Type] = [
        Swiftkata_Agent_V1_HealthResponse.self, Swiftkata_Agent_V1_CreateContainerResponse.self,
        Swiftkata_Agent_V1_StartContainerResponse.self, Swiftkata_Agent_V1_ExecProcessResponse.self,
        Swiftkata_Agent_V1_ReadOutputResponse.self, Swiftkata_Agent_V1_WriteStdinResponse.self,
        Swiftkata_Agent_V1_WaitProcessResponse.self, Swiftkata_Agent_V1_StatsContainerResponse.self,
        Swiftkata_Agent_V1_ListProcessesResponse.self, Swiftkata_Agent_V1_OOMEvent.self,
    ]

    /// A first byte of 0xFF selects the agent's spec path instead: the rest is an OCI config.json
    /// that is decoded, planned and (when it has a seccomp profile) compiled to BPF, as CreateContainer does.
    static let specMode: UInt8 = 0xFF

    static func run(_ input: UnsafeRawBufferPointer) {
        guard let first = input.first else { return }
        if first == specMode {
            runSpec(Array(input.dropFirst()))
            return
        }
        let chunkSize = Int(first % 64) + 1
        var parser = TTRPCFrameParser(maxPayloadSize: maxPayloadSize)
        var pending = ByteBuffer()
        var offset = 1
        while offset < input.count {
            let end = min(input.count, offset + chunkSize)
            pending.writeBytes(UnsafeRawBufferPointer(rebasing: input[offset..<end]))
            offset = end
            while let frame = parser.next(from: &pending) { handle(frame) }
        }
    }

    private static func runSpec(_ bytes: [UInt8]) {
        guard let spec = try? OCISpec.decode(bytes) else { return }
        _ = try? SpawnPlanner.container(spec: spec, rootfs: "/run/swiftkata/shared/c/rootfs")
        if let profile = spec.linux?.seccomp { _ = try? SeccompCompiler.compile(profile) }
        if let process = spec.process { _ = try? SpawnPlanner.exec(process: process) }
    }

    private static func handle(_ frame: TTRPCInboundFrame) {
        guard case .frame(let header, let payload) = frame else { return }
        switch header.type {
        case .request:
            guard case .call(let handler, let argument, let context) = router.route(streamID: header.streamID, payload: payload) else { return }
            let done = DispatchSemaphore(value: 0)
            Task {
                _ = try? await handler(argument, context)
                done.signal()
            }
            done.wait()
        case .response:
            guard let response = try? TTRPCResponse(decoding: payload) else { return }
            // Every reply type the shim decodes from the (untrusted) guest agent.
            for type in agentReplyTypes { _ = try? type.init(serializedBuffer: response.payload) }
            // ListProcesses as the shim reads it: entry by entry, bounded.
            if let entries = try? ProtoRepeatedField.firstEntries(of: 1, in: response.payload, limit: 16384) {
                for entry in entries { _ = try? Swiftkata_Agent_V1_ProcessInfo(serializedBuffer: entry) }
            }
        default:
            return
        }
    }
}

#if FUZZING
    @_cdecl("LLVMFuzzerTestOneInput")
    public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
        FuzzTarget.run(UnsafeRawBufferPointer(start: data, count: size))
        return 0
    }
#endif
