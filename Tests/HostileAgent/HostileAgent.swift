import AgentAPI
import Glibc
import GuestAgentCore
import Logging
import NIOCore
import NIOPosix
import SwiftKataOS
import SwiftProtobuf
import TTRPC

/// A guest agent that attacks the host, for the hostile-guest end-to-end tests only: it is built
/// into an image of its own (`make guest`: `.build/hostile-image.path`) and never installed. It is
/// PID 1 of a VM booted with `swiftkata.hostile=<attack>` on the kernel command line, answers Health
/// and CreateSandbox as the real agent does (so the shim goes on), pretends to run the containers it
/// is given (no process is started), and attacks with what it replies.
@main
struct HostileAgent {
    static func main() async {
        LoggingSystem.bootstrap { label in StreamLogHandler.standardError(label: label) }
        let logger = Logger(label: "swiftkata-hostile-agent")
        // As the real agent: Swift's tasks run on NIO's event loop, not on Dispatch's cooperative
        // pool, which has a single thread in a one-vCPU guest.
        _ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
        try? GuestSetup.mountEssentials()
        let attack = Attack(commandLine: readText("/proc/cmdline") ?? "")
        consoleLine("hostile agent: attack \(attack.rawValue)")
        if attack == .hang {
            while true { try? await Task.sleep(for: .seconds(3600)) }
        }
        let service = HostileService(attack: attack, state: PretendContainers())
        await AgentTransport.serveForever(server: TTRPCServer(services: [service.serviceDefinition], logger: logger), logger: logger)
    }

    /// Writes `consoleFloodBytes` to the console as fast as the serial port takes them, then a marker.
    /// At the lowest priority: the one vCPU still answers the host (the flood is what is tested).
    static func startConsoleFlood() {
        Thread.start {
            // On Linux, nice is per thread: who 0 is this thread.
            _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 19)
            let fd = open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC)
            guard fd >= 0 else { return }
            let line = Array((String(repeating: "x", count: 1023) + "\n").utf8)
            let chunk = Array([[UInt8]](repeating: line, count: 64).joined())
            var written = 0
            while written < consoleFloodBytes {
                let count = chunk.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                if count <= 0 { break }
                written += count
            }
            let done = Array("hostile agent: console flood of \(written) bytes done\n".utf8)
            _ = done.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        }
    }

    /// More than the host's cap on a pod's console log (virtlogd: 2 MiB x 4 files).
    static let consoleFloodBytes = 12 << 20
}

/// What the agent attacks with, from `swiftkata.hostile=` on the kernel command line.
enum Attack: String, Sendable {
    /// Replies to CreateContainer with a pid outside Linux's range.
    case lyingPID = "lying-pid"
    /// Answers every GetOOMEvent at once, naming the running container: a flood of OOM events.
    case oomFlood = "oom-flood"
    /// The container "exits" at once with status 2^32-1 at a time in the year 9999.
    case lyingExit = "lying-exit"
    /// ListProcesses lists 100 000 processes; stats are all UInt64.max.
    case oversized
    /// Writes 12 MiB to the serial console while containers "run".
    case consoleFlood = "console-flood"
    /// PID 1 exits right after the container started: the guest kernel panics (and the VM ends).
    case die
    /// PID 1 never serves: the guest boots, then idles for good (QEMU alive, no progress).
    case hang
    /// Behaves (for the control case).
    case none

    init(commandLine: String) {
        let value = commandLine.split(whereSeparator: { $0 == " " || $0 == "\n" }).first { $0.hasPrefix("swiftkata.hostile=") }
        self = value.flatMap { Attack(rawValue: String($0.dropFirst("swiftkata.hostile=".count))) } ?? .none
    }
}

/// The containers the host asked for, and the exits of their pretend processes.
actor PretendContainers {
    private var running: [String: [CheckedContinuation<UInt32, Never>]] = [:]
    private var exited: [String: UInt32] = [:]
    private(set) var last: String?

    func create(_ id: String) {
        running[id] = []
        last = id
    }

    /// Waits until the process is signalled (SIGKILL and SIGTERM end it, as in a real guest).
    func wait(_ key: String) async -> UInt32 {
        if let status = exited[key] { return status }
        return await withCheckedContinuation { running[key, default: []].append($0) }
    }

    func signal(_ key: String, _ number: UInt32) {
        guard number == UInt32(SIGKILL) || number == UInt32(SIGTERM) else { return }
        exited[key] = 128 + number
        running.removeValue(forKey: key)?.forEach { $0.resume(returning: 128 + number) }
    }
}

struct HostileService: Swiftkata_Agent_V1_AgentService {
    let attack: Attack
    let state: PretendContainers
    static let pretendPID: UInt32 = 100

    func health(_ request: Swiftkata_Agent_V1_HealthRequest, context: TTRPCCallContext) async throws -> Swiftkata_Agent_V1_HealthResponse {
        .with {
            $0.apiVersion = AgentProtocol.apiVersion
            $0.agentVersion = "hostile"
            $0.kernelRelease = "hostile"
            // A guest may claim any memory: the host bounds it by what it gave the VM.
            $0.guestMemoryTotalBytes = attack == .oversized ? .max : 1 << 28
            $0.guestMemoryUsedBytes = attack == .oversized ? .max : 1 << 20
        }
    }

    func createSandbox(_ request: Swiftkata_Agent_V1_CreateSandboxRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty {
        // On the console, which the shim quotes when a call times out: whether the request arrived.
        consoleLine("hostile agent: CreateSandbox received")
        return .init()
    }
    func destroySandbox(_ request: Swiftkata_Agent_V1_DestroySandboxRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty { .init() }

    func createContainer(
        _ request: Swiftkata_Agent_V1_CreateContainerRequest, context: TTRPCCallContext
    ) async throws -> Swiftkata_Agent_V1_CreateContainerResponse {
        await state.create(request.containerID)
        return .with { $0.pid = attack == .lyingPID ? .max : Self.pretendPID }
    }

    func startContainer(
        _ request: Swiftkata_Agent_V1_StartContainerRequest, context: TTRPCCallContext
    ) async throws -> Swiftkata_Agent_V1_StartContainerResponse {
        if attack == .consoleFlood { HostileAgent.startConsoleFlood() }
        if attack == .die {
            // After this reply is on its way: PID 1's exit panics the guest kernel.
            Task.detached {
                try? await Task.sleep(for: .milliseconds(300))
                consoleLine("hostile agent: PID 1 exits now")
                exit(1)
            }
        }
        return .with { $0.pid = attack == .lyingPID ? 0 : Self.pretendPID }
    }

    func removeContainer(_ request: Swiftkata_Agent_V1_RemoveContainerRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty { .init() }
    func pauseContainer(_ request: Swiftkata_Agent_V1_PauseContainerRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty { .init() }
    func resumeContainer(_ request: Swiftkata_Agent_V1_ResumeContainerRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty { .init() }
    func updateContainer(_ request: Swiftkata_Agent_V1_UpdateContainerRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty { .init() }

    func statsContainer(
        _ request: Swiftkata_Agent_V1_StatsContainerRequest, context: TTRPCCallContext
    ) async throws -> Swiftkata_Agent_V1_StatsContainerResponse {
        let huge = attack == .oversized ? UInt64.max : 1
        return .with {
            $0.cgroup.memoryCurrent = huge
            $0.cgroup.memoryMax = huge
            $0.cgroup.pidsCurrent = huge
            $0.cgroup.cpuStat = ["usage_usec": huge, "user_usec": huge, "system_usec": huge]
            $0.cgroup.memoryStat = ["anon": huge, "file": huge, "inactive_file": huge]
        }
    }

    func listProcesses(_ request: Swiftkata_Agent_V1_ListProcessesRequest, context: TTRPCCallContext) async throws -> Swiftkata_Agent_V1_ListProcessesResponse {
        let count = attack == .oversized ? 100_000 : 1
        return .with {
            $0.processes = (0..<count).map { index in
                .with {
                    $0.pid = attack == .oversized ? UInt32.max - UInt32(index) : Self.pretendPID
                    $0.command = "hostile"
                }
            }
        }
    }

    func execProcess(_ request: Swiftkata_Agent_V1_ExecProcessRequest, context: TTRPCCallContext) async throws -> Swiftkata_Agent_V1_ExecProcessResponse {
        throw TTRPCError(.unimplemented, "the hostile agent runs no execs")
    }

    func signalProcess(_ request: Swiftkata_Agent_V1_SignalProcessRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty {
        await state.signal("\(request.containerID)/\(request.execID)", request.signal)
        return .init()
    }

    func waitProcess(_ request: Swiftkata_Agent_V1_WaitProcessRequest, context: TTRPCCallContext) async throws -> Swiftkata_Agent_V1_WaitProcessResponse {
        if attack == .lyingExit {
            return .with {
                $0.exitStatus = .max
                $0.exitedAt = Google_Protobuf_Timestamp(seconds: 253_402_300_799, nanos: 999_999_999)  // 9999-12-31
            }
        }
        let status = await state.wait("\(request.containerID)/\(request.execID)")
        return .with { $0.exitStatus = status }
    }

    func resizeTty(_ request: Swiftkata_Agent_V1_ResizeTtyRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty { .init() }
    func writeStdin(_ request: Swiftkata_Agent_V1_WriteStdinRequest, context: TTRPCCallContext) async throws -> Swiftkata_Agent_V1_WriteStdinResponse {
        .with { $0.written = UInt32(request.data.count) }
    }
    func closeStdin(_ request: Swiftkata_Agent_V1_CloseStdinRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty { .init() }

    /// No output: the stream ends at once.
    func readOutput(raw payload: ByteBuffer, context: TTRPCCallContext) async throws -> TTRPCReplyPayload {
        ReadOutputReply.encode(data: [], eof: true)
    }

    func getOOMEvent(_ request: Swiftkata_Agent_V1_GetOOMEventRequest, context: TTRPCCallContext) async throws -> Swiftkata_Agent_V1_OOMEvent {
        if attack == .oomFlood {
            // The host asks from the VM's start on; the flood begins with the first container.
            while await state.last == nil { try await Task.sleep(for: .milliseconds(10)) }
            let id = await state.last ?? ""
            return .with { $0.containerID = id }
        }
        // Otherwise no OOM ever: park the call (the host holds one open for the VM's life).
        try await Task.sleep(for: .seconds(1_000_000))
        throw TTRPCError(.unavailable, "no OOM")
    }

    func openPortForward(
        _ request: Swiftkata_Agent_V1_OpenPortForwardRequest, context: TTRPCCallContext
    ) async throws -> Swiftkata_Agent_V1_OpenPortForwardResponse {
        throw TTRPCError(.unimplemented, "no port forwarding")
    }
    func writePortForward(
        _ request: Swiftkata_Agent_V1_WritePortForwardRequest, context: TTRPCCallContext
    ) async throws -> Swiftkata_Agent_V1_WritePortForwardResponse {
        throw TTRPCError(.unimplemented, "no port forwarding")
    }
    func readPortForward(
        _ request: Swiftkata_Agent_V1_ReadPortForwardRequest, context: TTRPCCallContext
    ) async throws -> Swiftkata_Agent_V1_ReadPortForwardResponse {
        throw TTRPCError(.unimplemented, "no port forwarding")
    }
    func closePortForward(_ request: Swiftkata_Agent_V1_ClosePortForwardRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty { .init() }
    func adjustResources(
        _ request: Swiftkata_Agent_V1_AdjustResourcesRequest, context: TTRPCCallContext
    ) async throws -> Swiftkata_Agent_V1_AdjustResourcesResponse {
        // Claims far more than it was given: the host must not believe it.
        .with {
            $0.onlineVcpus = 4096
            $0.pluggedMemoryBytes = .max
        }
    }
    func startDebugConsole(
        _ request: Swiftkata_Agent_V1_StartDebugConsoleRequest, context: TTRPCCallContext
    ) async throws -> Swiftkata_Agent_V1_StartDebugConsoleResponse {
        // A console the host never asked to be possible, named as a real container: refused by the host.
        .with {
            $0.pid = 1
            $0.containerID = "victim"
        }
    }
}

/// A detached thread for blocking work (the console flood).
enum Thread {
    static func start(_ body: @escaping @Sendable () -> Void) {
        Task.detached { await onBlockingThread(body) }
    }
}
