import AgentAPI
import FoundationEssentials
import TTRPC

/// The shim's connection to one pod's guest agent. Ordinary calls carry the configured call timeout
/// (an unresponsive agent fails them with DeadlineExceeded); the calls that wait by design (process
/// exit, output, OOM) have none and end when the VM does. Failures become `ShimError`s.
struct AgentSession: Sendable {
    let client: TTRPCClient
    let callTimeout: Duration

    private var agent: Swiftkata_Agent_V1_AgentClient { Swiftkata_Agent_V1_AgentClient(client) }

    private func call<T>(_ operation: String, _ body: () async throws -> T) async throws(ShimError) -> T {
        do { return try await body() } catch { throw ShimError.agent(operation, error) }
    }

    /// Linux's largest pid (PID_MAX_LIMIT). A guest pid outside 1...this is a lie, refused before it
    /// reaches anything that converts it (`Int32(pid)` traps on values past Int32.max).
    static let maxGuestPID: UInt32 = 4_194_304

    /// `pid` when it can be a guest process id; otherwise the call fails as a broken reply.
    static func validGuestPID(_ pid: UInt32, _ operation: String) throws(ShimError) -> UInt32 {
        guard pid >= 1, pid <= maxGuestPID else {
            throw .internalError("\(operation): the guest agent replied with pid \(pid), outside 1...\(maxGuestPID)")
        }
        return pid
    }

    func createSandbox(_ request: Swiftkata_Agent_V1_CreateSandboxRequest) async throws(ShimError) {
        _ = try await call("creating the sandbox in the guest") { try await agent.createSandbox(request, timeout: callTimeout) }
    }

    func createContainer(id: String, spec: [UInt8], terminal: Bool, stdin: Bool) async throws(ShimError) -> UInt32 {
        var request = Swiftkata_Agent_V1_CreateContainerRequest()
        request.containerID = id
        request.ociSpec = Data(spec)
        request.terminal = terminal
        request.stdin = stdin
        let operation = "creating container \(id) in the guest"
        return try Self.validGuestPID(try await call(operation) { try await agent.createContainer(request, timeout: callTimeout).pid }, operation)
    }

    func startContainer(id: String) async throws(ShimError) -> UInt32 {
        var request = Swiftkata_Agent_V1_StartContainerRequest()
        request.containerID = id
        let operation = "starting container \(id)"
        return try Self.validGuestPID(try await call(operation) { try await agent.startContainer(request, timeout: callTimeout).pid }, operation)
    }

    func removeContainer(id: String) async throws(ShimError) {
        var request = Swiftkata_Agent_V1_RemoveContainerRequest()
        request.containerID = id
        _ = try await call("removing container \(id) in the guest") { try await agent.removeContainer(request, timeout: callTimeout) }
    }

    func setPaused(id: String, _ paused: Bool) async throws(ShimError) {
        if paused {
            var request = Swiftkata_Agent_V1_PauseContainerRequest()
            request.containerID = id
            _ = try await call("pausing container \(id)") { try await agent.pauseContainer(request, timeout: callTimeout) }
        } else {
            var request = Swiftkata_Agent_V1_ResumeContainerRequest()
            request.containerID = id
            _ = try await call("resuming container \(id)") { try await agent.resumeContainer(request, timeout: callTimeout) }
        }
    }

    func update(id: String, resources: [UInt8]) async throws(ShimError) {
        var request = Swiftkata_Agent_V1_UpdateContainerRequest()
        request.containerID = id
        request.resources = Data(resources)
        _ = try await call("updating container \(id)") { try await agent.updateContainer(request, timeout: callTimeout) }
    }

    func stats(id: String) async throws(ShimError) -> Swiftkata_Agent_V1_CgroupStats {
        var request = Swiftkata_Agent_V1_StatsContainerRequest()
        request.containerID = id
        return try await call("reading stats of container \(id)") { try await agent.statsContainer(request, timeout: callTimeout).cgroup }
    }

    /// Most processes one reply is decoded into: the guest decides how many it lists.
    static let maxListedProcesses = 16384

    func listProcesses(id: String) async throws(ShimError) -> [Swiftkata_Agent_V1_ProcessInfo] {
        var request = Swiftkata_Agent_V1_ListProcessesRequest()
        request.containerID = id
        let operation = "listing processes of container \(id)"
        // Decoded entry by entry, and no further than the bound: never millions of entries first.
        return try await call(operation) {
            let reply = try await client.call(service: "swiftkata.agent.v1.Agent", method: "ListProcesses",
                                              payload: try request.serializedBuffer(), timeout: callTimeout)
            return try ProtoRepeatedField.firstEntries(of: 1, in: reply, limit: Self.maxListedProcesses).map { entry in
                try Swiftkata_Agent_V1_ProcessInfo(serializedBuffer: entry)
            }
        }
    }

    func exec(id: String, execID: String, process: [UInt8], terminal: Bool, stdin: Bool) async throws(ShimError) -> UInt32 {
        var request = Swiftkata_Agent_V1_ExecProcessRequest()
        request.containerID = id
        request.execID = execID
        request.process = Data(process)
        request.terminal = terminal
        request.stdin = stdin
        let operation = "starting exec \(execID) in container \(id)"
        return try Self.validGuestPID(try await call(operation) { try await agent.execProcess(request, timeout: callTimeout).pid }, operation)
    }

    func signal(id: String, execID: String, signal: UInt32, all: Bool) async throws(ShimError) {
        var request = Swiftkata_Agent_V1_SignalProcessRequest()
        request.containerID = id
        request.execID = execID
        request.signal = signal
        request.all = all
        _ = try await call("signalling \(execID.isEmpty ? id : execID)") { try await agent.signalProcess(request, timeout: callTimeout) }
    }

    /// Waits (without a deadline) for the process to exit.
    func wait(id: String, execID: String) async throws(ShimError) -> Swiftkata_Agent_V1_WaitProcessResponse {
        var request = Swiftkata_Agent_V1_WaitProcessRequest()
        request.containerID = id
        request.execID = execID
        return try await call("waiting for \(execID.isEmpty ? id : execID)") { try await agent.waitProcess(request) }
    }

    func resize(id: String, execID: String, rows: UInt32, columns: UInt32) async throws(ShimError) {
        var request = Swiftkata_Agent_V1_ResizeTtyRequest()
        request.containerID = id
        request.execID = execID
        request.rows = rows
        request.columns = columns
        _ = try await call("resizing the terminal of \(execID.isEmpty ? id : execID)") { try await agent.resizeTty(request, timeout: callTimeout) }
    }

    func writeStdin(containerID: String, execID: String, data: [UInt8]) async throws(ShimError) -> UInt32 {
        var request = Swiftkata_Agent_V1_WriteStdinRequest()
        request.containerID = containerID
        request.execID = execID
        request.data = Data(data)
        return try await call("writing stdin") { try await agent.writeStdin(request, timeout: callTimeout).written }
    }

    func closeStdin(containerID: String, execID: String) async throws(ShimError) {
        var request = Swiftkata_Agent_V1_CloseStdinRequest()
        request.containerID = containerID
        request.execID = execID
        _ = try await call("closing stdin") { try await agent.closeStdin(request, timeout: callTimeout) }
    }

    /// Waits (without a deadline) for output or EOF.
    func readOutput(containerID: String, execID: String, stream: Swiftkata_Agent_V1_OutputStream, maxBytes: Int) async throws(ShimError) -> Swiftkata_Agent_V1_ReadOutputResponse {
        var request = Swiftkata_Agent_V1_ReadOutputRequest()
        request.containerID = containerID
        request.execID = execID
        request.stream = stream
        request.maxBytes = UInt32(maxBytes)
        return try await call("reading output") { try await agent.readOutput(request) }
    }

    /// Waits (without a deadline) for the next container killed by the guest's OOM killer.
    func nextOOM() async throws(ShimError) -> String {
        try await call("waiting for OOM events") { try await agent.getOOMEvent(.init()).containerID }
    }
}
