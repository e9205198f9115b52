import ContainerdAPI
import Foundation
import NIOCore
import SwiftProtobuf
import TTRPC
import Testing

/// The generated containerd types keep containerd's field numbers, and the generated service
/// protocol and client talk to each other over real ttrpc.
@Suite("containerd API")
struct ContainerdAPITests {
    @Test func createTaskRequestUsesContainerdFieldNumbers() throws {
        var request = Containerd_Task_V2_CreateTaskRequest()
        request.id = "c"  // 1
        request.bundle = "b"  // 2
        request.terminal = true  // 4
        request.stdout = "o"  // 6
        var mount = Containerd_Types_Mount()
        mount.type = "overlay"
        request.rootfs = [mount]  // 3
        let bytes: [UInt8] = try request.serializedBytes()
        #expect(bytes == [0x0a, 1, 0x63, 0x12, 1, 0x62, 0x1a, 9, 0x0a, 7] + Array("overlay".utf8) + [0x20, 1, 0x32, 1, 0x6f])
    }

    @Test func taskExitEventUsesContainerdFieldNumbers() throws {
        var exit = Containerd_Events_TaskExit()
        exit.containerID = "c"  // 1
        exit.id = "c"  // 2
        exit.pid = 7  // 3
        exit.exitStatus = 137  // 4
        let bytes: [UInt8] = try exit.serializedBytes()
        #expect(bytes == [0x0a, 1, 0x63, 0x12, 1, 0x63, 0x18, 7, 0x20, 0x89, 0x01])
    }

    @Test func runtimeOptionsDecodeContainerd17ConfigBody() throws {
        var options = Runtimeoptions_V1_Options()
        options.configPath = "/etc/swiftkata/configuration.toml"
        options.configBody = Data("[hypervisor]".utf8)
        let decoded = try Runtimeoptions_V1_Options(serializedBytes: try options.serializedBytes() as [UInt8])
        #expect(decoded.configPath == options.configPath)
        #expect(decoded.configBody == options.configBody)
    }

    @Test func cgroupsV1AndV2MetricsAreDistinctTypes() throws {
        var v2 = Io_Containerd_Cgroups_V2_Metrics()
        v2.memory.usage = 1 << 20
        v2.cpu.usageUsec = 42
        let any = try Google_Protobuf_Any(message: v2, typePrefix: "")
        #expect(Io_Containerd_Cgroups_V2_Metrics.protoMessageName == "io.containerd.cgroups.v2.Metrics")
        #expect(Io_Containerd_Cgroups_V1_Metrics.protoMessageName == "io.containerd.cgroups.v1.Metrics")
        let decoded = try Io_Containerd_Cgroups_V2_Metrics(serializedBytes: any.value)
        #expect(decoded.memory.usage == 1 << 20)
    }

    /// A Task service that records what it was asked.
    private struct RecordingTask: Containerd_Task_V2_TaskService {
        func state(_ request: Containerd_Task_V2_StateRequest, context: TTRPCCallContext) async throws -> Containerd_Task_V2_StateResponse {
            guard request.id == "known" else { throw TTRPCError(.notFound, "container \(request.id): not found") }
            var response = Containerd_Task_V2_StateResponse()
            response.id = request.id
            response.status = .running
            response.pid = 42
            return response
        }
        func create(_ request: Containerd_Task_V2_CreateTaskRequest, context: TTRPCCallContext) async throws -> Containerd_Task_V2_CreateTaskResponse {
            var response = Containerd_Task_V2_CreateTaskResponse()
            response.pid = UInt32(request.rootfs.count)
            return response
        }
        func start(_ request: Containerd_Task_V2_StartRequest, context: TTRPCCallContext) async throws -> Containerd_Task_V2_StartResponse { .init() }
        func delete(_ request: Containerd_Task_V2_DeleteRequest, context: TTRPCCallContext) async throws -> Containerd_Task_V2_DeleteResponse { .init() }
        func pids(_ request: Containerd_Task_V2_PidsRequest, context: TTRPCCallContext) async throws -> Containerd_Task_V2_PidsResponse { .init() }
        func pause(_ request: Containerd_Task_V2_PauseRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty { .init() }
        func resume(_ request: Containerd_Task_V2_ResumeRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty { .init() }
        func checkpoint(_ request: Containerd_Task_V2_CheckpointTaskRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty {
            throw TTRPCError(.unimplemented, "checkpoint: not implemented")
        }
        func kill(_ request: Containerd_Task_V2_KillRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty { .init() }
        func exec(_ request: Containerd_Task_V2_ExecProcessRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty { .init() }
        func resizePty(_ request: Containerd_Task_V2_ResizePtyRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty { .init() }
        func closeIO(_ request: Containerd_Task_V2_CloseIORequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty { .init() }
        func update(_ request: Containerd_Task_V2_UpdateTaskRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty { .init() }
        func wait(_ request: Containerd_Task_V2_WaitRequest, context: TTRPCCallContext) async throws -> Containerd_Task_V2_WaitResponse { .init() }
        func stats(_ request: Containerd_Task_V2_StatsRequest, context: TTRPCCallContext) async throws -> Containerd_Task_V2_StatsResponse { .init() }
        func connect(_ request: Containerd_Task_V2_ConnectRequest, context: TTRPCCallContext) async throws -> Containerd_Task_V2_ConnectResponse {
            var response = Containerd_Task_V2_ConnectResponse()
            response.version = context.metadata[TTRPCMetadata.namespaceKey].first ?? ""
            return response
        }
        func shutdown(_ request: Containerd_Task_V2_ShutdownRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty { .init() }
    }

    @Test func generatedTaskServiceAndClientTalkOverTTRPC() async throws {
        let path = "/tmp/swiftkata-capi-\(getpid()).sock"
        let listener = try await TTRPCServer(services: [RecordingTask().serviceDefinition]).listen(unixSocketPath: path, replacingExisting: true)
        let connection = try await TTRPCClient.connect(unixSocketPath: path)
        let task = Containerd_Task_V2_TaskClient(connection)

        var state = Containerd_Task_V2_StateRequest()
        state.id = "known"
        let reply = try await task.state(state)
        #expect(reply.pid == 42 && reply.status == .running)

        state.id = "other"
        let missing = await #expect(throws: TTRPCError.self) { try await task.state(state) }
        #expect(missing == TTRPCError(.notFound, "container other: not found"))

        let connect = try await task.connect(.init(), metadata: [TTRPCMetadata.namespaceKey: "k8s.io"])
        #expect(connect.version == "k8s.io")

        let checkpoint = await #expect(throws: TTRPCError.self) { try await task.checkpoint(.init()) }
        #expect(checkpoint?.code == .unimplemented)
        #expect(RecordingTask.ttrpcServiceName == ContainerdNames.taskService)

        await connection.close()
        await listener.close()
    }
}
