import AgentAPI
import Glibc
import Logging
import SwiftProtobuf
import TTRPC

/// The agent API as served in the guest.
///
/// Health works; sandbox and container methods answer `Unimplemented` until the container runtime
/// lands (issue "The guest"), so a shim talking to this agent gets a clear status, never a hang.
struct AgentService: Swiftkata_Agent_V1_AgentService {
    let reaper: Reaper
    let logger: Logger

    static let version = "0.1.0"

    func health(_ request: Swiftkata_Agent_V1_HealthRequest, context: TTRPCCallContext) async throws -> Swiftkata_Agent_V1_HealthResponse {
        var response = Swiftkata_Agent_V1_HealthResponse()
        response.apiVersion = AgentProtocol.apiVersion
        response.agentVersion = Self.version
        var names = utsname()
        uname(&names)
        response.kernelRelease = withUnsafeBytes(of: names.release) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
        var now = timespec()
        clock_gettime(CLOCK_BOOTTIME, &now)
        response.uptimeNanos = UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
        return response
    }

    private func notYet(_ method: String) -> TTRPCError {
        TTRPCError(.unimplemented, "\(method): not implemented by this agent yet")
    }

    func createSandbox(_ request: Swiftkata_Agent_V1_CreateSandboxRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty { throw notYet("CreateSandbox") }
    func destroySandbox(_ request: Swiftkata_Agent_V1_DestroySandboxRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty { throw notYet("DestroySandbox") }
    func createContainer(_ request: Swiftkata_Agent_V1_CreateContainerRequest, context: TTRPCCallContext) async throws -> Swiftkata_Agent_V1_CreateContainerResponse { throw notYet("CreateContainer") }
    func startContainer(_ request: Swiftkata_Agent_V1_StartContainerRequest, context: TTRPCCallContext) async throws -> Swiftkata_Agent_V1_StartContainerResponse { throw notYet("StartContainer") }
    func removeContainer(_ request: Swiftkata_Agent_V1_RemoveContainerRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty { throw notYet("RemoveContainer") }
    func pauseContainer(_ request: Swiftkata_Agent_V1_PauseContainerRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty { throw notYet("PauseContainer") }
    func resumeContainer(_ request: Swiftkata_Agent_V1_ResumeContainerRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty { throw notYet("ResumeContainer") }
    func updateContainer(_ request: Swiftkata_Agent_V1_UpdateContainerRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty { throw notYet("UpdateContainer") }
    func statsContainer(_ request: Swiftkata_Agent_V1_StatsContainerRequest, context: TTRPCCallContext) async throws -> Swiftkata_Agent_V1_StatsContainerResponse { throw notYet("StatsContainer") }
    func listProcesses(_ request: Swiftkata_Agent_V1_ListProcessesRequest, context: TTRPCCallContext) async throws -> Swiftkata_Agent_V1_ListProcessesResponse { throw notYet("ListProcesses") }
    func execProcess(_ request: Swiftkata_Agent_V1_ExecProcessRequest, context: TTRPCCallContext) async throws -> Swiftkata_Agent_V1_ExecProcessResponse { throw notYet("ExecProcess") }
    func signalProcess(_ request: Swiftkata_Agent_V1_SignalProcessRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty { throw notYet("SignalProcess") }
    func waitProcess(_ request: Swiftkata_Agent_V1_WaitProcessRequest, context: TTRPCCallContext) async throws -> Swiftkata_Agent_V1_WaitProcessResponse { throw notYet("WaitProcess") }
    func resizeTty(_ request: Swiftkata_Agent_V1_ResizeTtyRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty { throw notYet("ResizeTty") }
    func writeStdin(_ request: Swiftkata_Agent_V1_WriteStdinRequest, context: TTRPCCallContext) async throws -> Swiftkata_Agent_V1_WriteStdinResponse { throw notYet("WriteStdin") }
    func closeStdin(_ request: Swiftkata_Agent_V1_CloseStdinRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty { throw notYet("CloseStdin") }
    func readOutput(_ request: Swiftkata_Agent_V1_ReadOutputRequest, context: TTRPCCallContext) async throws -> Swiftkata_Agent_V1_ReadOutputResponse { throw notYet("ReadOutput") }
    func getOOMEvent(_ request: Swiftkata_Agent_V1_GetOOMEventRequest, context: TTRPCCallContext) async throws -> Swiftkata_Agent_V1_OOMEvent { throw notYet("GetOOMEvent") }
}
