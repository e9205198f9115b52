import AgentAPI
import Glibc
import Logging
import OperatorAPI
import SwiftKataOS
import SwiftProtobuf
import Synchronization
import TTRPC

/// `swiftkata.operator.v1.PodOperator`, served to root's `swiftkata-ctl` on the pod's
/// `operator.sock`: the pod's description and counters (metrics), and the debug console, relayed
/// to the guest agent's own calls. What the guest answers is bounded here as everywhere else.
struct PodOperatorService: Swiftkata_Operator_V1_PodOperatorService {
    let pod: Pod

    /// Longest wait for the guest's Health in Describe: a scrape must not hang on a stuck guest.
    static let guestAnswerLimit = Duration.seconds(2)
    /// Most bytes one ReadConsole returns.
    static let consoleChunk = 64 << 10

    func describe(_ request: Swiftkata_Operator_V1_DescribeRequest, context: TTRPCCallContext) async throws -> Swiftkata_Operator_V1_PodDescription {
        let state = await pod.operatorState()
        var description = Swiftkata_Operator_V1_PodDescription()
        description.podID = state.podID
        description.namespace = pod.namespace
        description.shimPid = UInt32(getpid())
        description.containers = UInt32(clamping: state.containers)
        let statistics = pod.statistics.snapshot
        description.stdoutBytes = statistics.stdoutBytes
        description.stderrBytes = statistics.stderrBytes
        description.agentCalls = statistics.agentCalls.keys.sorted().map { method in
            let calls = statistics.agentCalls[method]!
            return .with {
                $0.method = method
                $0.calls = calls.calls
                $0.failures = calls.failures
                $0.nanoseconds = calls.nanoseconds
                $0.waits = Swiftkata_Agent_V1_AgentWire.waitingMethods.contains(method)
            }
        }
        guard let vm = state.vm else { return description }
        let report = vm.report
        description.domain = report.domainName
        description.qemuPid = UInt32(clamping: report.qemuPID)
        description.virtiofsdPid = UInt32(clamping: report.fileServerPID ?? 0)
        description.accelerator = report.accelerator
        description.transport = report.transport
        description.warmPool = report.claimedFromPool
        description.vcpus = UInt32(clamping: report.size.vcpus)
        description.memoryBytes = UInt64(clamping: report.size.memoryMiB) << 20
        description.readyAt = report.readyAt
        description.boot = .with {
            $0.prepareMs = UInt64(clamping: report.boot.prepare.milliseconds)
            $0.domainStartMs = UInt64(clamping: report.boot.domainStart.milliseconds)
            $0.agentReadyMs = UInt64(clamping: report.boot.agentReady.milliseconds)
            $0.sandboxMs = UInt64(clamping: report.boot.sandbox.milliseconds)
            $0.totalMs = UInt64(clamping: report.boot.total.milliseconds)
        }
        if request.askGuest, let health = await Self.guestHealth(vm.agent) {
            description.guestAnswered = true
            // The guest's own figures, bounded by what the VM was given: a lie cannot exceed it.
            let memory = description.memoryBytes
            description.guestMemoryTotalBytes = min(health.guestMemoryTotalBytes, memory)
            description.guestMemoryUsedBytes = min(health.guestMemoryUsedBytes, memory)
            description.agentRssBytes = min(health.agentRssBytes, memory)
        }
        return description
    }

    /// The agent's Health, or nil when it did not answer within `guestAnswerLimit`.
    private static func guestHealth(_ agent: GuestAgent) async -> Swiftkata_Agent_V1_HealthResponse? {
        let answer = Mutex<Swiftkata_Agent_V1_HealthResponse?>(nil)
        let call = Task {
            let health = try? await agent.call("health") { agent in try await agent.health(.init()) }
            answer.withLock { $0 = health }
        }
        guard await awaitCompletion(of: call, atMost: guestAnswerLimit) else { return nil }
        return answer.withLock { $0 }
    }

    func openConsole(_ request: Swiftkata_Operator_V1_OpenConsoleRequest, context: TTRPCCallContext) async throws -> Swiftkata_Operator_V1_OpenConsoleResponse {
        let agent = try await pod.runningAgent()
        let consoleID = Self.newConsoleID()
        let started = try await agent.call("starting the debug console") { agent in
            try await agent.startDebugConsole(
                .with {
                    $0.consoleID = consoleID
                    $0.rows = min(request.rows, 1000)
                    $0.columns = min(request.columns, 1000)
                })
        }
        // The agent names the console's process; only the name it was asked for is accepted.
        guard started.containerID == "@console-\(consoleID)" else {
            throw ShimError.internalError("the guest agent named the console \(started.containerID.prefix(80)), not @console-\(consoleID)")
        }
        let pid = try GuestAgent.validGuestPID(started.pid, "starting the debug console")
        await pod.openedConsole(consoleID, containerID: started.containerID)
        pod.logger.notice("debug console opened", metadata: ["console": "\(consoleID)", "guest_pid": "\(pid)"])
        return .with {
            $0.consoleID = consoleID
            $0.pid = pid
        }
    }

    func writeConsole(_ request: Swiftkata_Operator_V1_WriteConsoleRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty {
        let (agent, containerID) = try await console(request.consoleID)
        _ = try await agent.call("writing to the debug console") { agent in
            try await agent.writeStdin(
                .with {
                    $0.containerID = containerID
                    $0.data = request.data
                })
        }
        return Google_Protobuf_Empty()
    }

    func resizeConsole(_ request: Swiftkata_Operator_V1_ResizeConsoleRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty {
        let (agent, containerID) = try await console(request.consoleID)
        _ = try await agent.call("resizing the debug console") { agent in
            try await agent.resizeTty(
                .with {
                    $0.containerID = containerID
                    $0.rows = min(request.rows, 1000)
                    $0.columns = min(request.columns, 1000)
                })
        }
        return Google_Protobuf_Empty()
    }

    func readConsole(_ request: Swiftkata_Operator_V1_ReadConsoleRequest, context: TTRPCCallContext) async throws -> Swiftkata_Operator_V1_ReadConsoleResponse {
        let (agent, containerID) = try await console(request.consoleID)
        let output = try await agent.call("reading the debug console") { agent in
            try await agent.readOutput(
                .with {
                    $0.containerID = containerID
                    $0.stream = .stdout
                    $0.maxBytes = UInt32(Self.consoleChunk)
                })
        }
        return .with {
            $0.data = output.data.prefix(Self.consoleChunk)
            $0.eof = output.eof
        }
    }

    func closeConsole(
        _ request: Swiftkata_Operator_V1_CloseConsoleRequest, context: TTRPCCallContext
    ) async throws -> Swiftkata_Operator_V1_CloseConsoleResponse {
        let (agent, containerID) = try await console(request.consoleID)
        await pod.closedConsole(request.consoleID)
        _ = try? await agent.call("ending the debug console") { agent in
            try await agent.signalProcess(
                .with {
                    $0.containerID = containerID
                    $0.signal = UInt32(SIGKILL)
                })
        }
        let exit = try await agent.call("waiting for the debug console") { agent in
            try await agent.waitProcess(.with { $0.containerID = containerID })
        }
        _ = try? await agent.call("removing the debug console") { agent in try await agent.removeContainer(.with { $0.containerID = containerID }) }
        pod.logger.notice("debug console closed", metadata: ["console": "\(request.consoleID)", "exit_status": "\(exit.exitStatus)"])
        return .with { $0.exitStatus = min(exit.exitStatus, 255) }
    }

    private func console(_ consoleID: String) async throws(ShimError) -> (GuestAgent, String) {
        let agent = try await pod.runningAgent()
        guard let containerID = await pod.consoles[consoleID] else { throw .notFound("debug console \(consoleID.prefix(80))") }
        return (agent, containerID)
    }

    private static func newConsoleID() -> String {
        let hex = String(UInt64.random(in: .min ... .max), radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}

extension Pod {
    /// What the operator service reads of the pod, in one hop onto the actor.
    func operatorState() -> (podID: String, vm: (any PodMachine)?, containers: Int) {
        (layout?.podID ?? "", vm, containers.count)
    }

    /// The running VM's agent; Unavailable before the VM runs or after it stopped.
    func runningAgent() throws(ShimError) -> GuestAgent {
        try runningVM().agent
    }

    func openedConsole(_ consoleID: String, containerID: String) { consoles[consoleID] = containerID }
    func closedConsole(_ consoleID: String) { consoles[consoleID] = nil }
}
