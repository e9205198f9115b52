import ContainerdAPI
import Glibc
import Logging
import SwiftProtobuf
import TTRPC

/// containerd's `containerd.task.v2.Task` service for one pod, on top of `Pod`.
struct TaskService: Containerd_Task_V2_TaskService {
    let pod: Pod
    /// Called when Shutdown arrives and no containers remain: the daemon tears the pod down and exits.
    let onShutdown: @Sendable () -> Void

    func state(_ request: Containerd_Task_V2_StateRequest, context: TTRPCCallContext) async throws -> Containerd_Task_V2_StateResponse {
        try await pod.state(id: request.id, execID: request.execID)
    }

    func create(_ request: Containerd_Task_V2_CreateTaskRequest, context: TTRPCCallContext) async throws -> Containerd_Task_V2_CreateTaskResponse {
        var response = Containerd_Task_V2_CreateTaskResponse()
        response.pid = try await pod.create(request)
        return response
    }

    func start(_ request: Containerd_Task_V2_StartRequest, context: TTRPCCallContext) async throws -> Containerd_Task_V2_StartResponse {
        var response = Containerd_Task_V2_StartResponse()
        response.pid = try await pod.start(id: request.id, execID: request.execID)
        return response
    }

    func delete(_ request: Containerd_Task_V2_DeleteRequest, context: TTRPCCallContext) async throws -> Containerd_Task_V2_DeleteResponse {
        try await pod.delete(id: request.id, execID: request.execID)
    }

    func pids(_ request: Containerd_Task_V2_PidsRequest, context: TTRPCCallContext) async throws -> Containerd_Task_V2_PidsResponse {
        try await pod.pids(id: request.id)
    }

    func pause(_ request: Containerd_Task_V2_PauseRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty {
        try await pod.setPaused(id: request.id, true)
        return Google_Protobuf_Empty()
    }

    func resume(_ request: Containerd_Task_V2_ResumeRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty {
        try await pod.setPaused(id: request.id, false)
        return Google_Protobuf_Empty()
    }

    func checkpoint(_ request: Containerd_Task_V2_CheckpointTaskRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty {
        throw ShimError.unimplemented("checkpointing a VM-isolated container")
    }

    func kill(_ request: Containerd_Task_V2_KillRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty {
        try await pod.kill(id: request.id, execID: request.execID, signal: request.signal, all: request.all)
        return Google_Protobuf_Empty()
    }

    func exec(_ request: Containerd_Task_V2_ExecProcessRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty {
        try await pod.exec(request)
        return Google_Protobuf_Empty()
    }

    func resizePty(_ request: Containerd_Task_V2_ResizePtyRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty {
        try await pod.resize(id: request.id, execID: request.execID, width: request.width, height: request.height)
        return Google_Protobuf_Empty()
    }

    func closeIO(_ request: Containerd_Task_V2_CloseIORequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty {
        try await pod.closeIO(id: request.id, execID: request.execID, stdin: request.stdin)
        return Google_Protobuf_Empty()
    }

    func update(_ request: Containerd_Task_V2_UpdateTaskRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty {
        try await pod.update(id: request.id, resources: request.resources)
        return Google_Protobuf_Empty()
    }

    func wait(_ request: Containerd_Task_V2_WaitRequest, context: TTRPCCallContext) async throws -> Containerd_Task_V2_WaitResponse {
        try await pod.wait(id: request.id, execID: request.execID)
    }

    func stats(_ request: Containerd_Task_V2_StatsRequest, context: TTRPCCallContext) async throws -> Containerd_Task_V2_StatsResponse {
        try await pod.stats(id: request.id)
    }

    func connect(_ request: Containerd_Task_V2_ConnectRequest, context: TTRPCCallContext) async throws -> Containerd_Task_V2_ConnectResponse {
        var response = Containerd_Task_V2_ConnectResponse()
        response.shimPid = UInt32(getpid())
        response.taskPid = await pod.taskPID
        response.version = "2"
        return response
    }

    func shutdown(_ request: Containerd_Task_V2_ShutdownRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty {
        if await pod.isEmpty {
            // The reply goes first: `ctr run --rm` and CRI wait for it, not for the VM. The daemon then
            // destroys the VM and removes the pod's host state before it closes its socket and exits;
            // the `delete` containerd runs meanwhile sees the socket still served and leaves that to it.
            onShutdown()
        }
        return Google_Protobuf_Empty()
    }
}
