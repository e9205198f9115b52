import AgentAPI
import AgentRuntime
import FoundationEssentials
import Glibc
import GuestAgentCore
import Logging
import NIOCore
import SwiftKataOS
import SwiftProtobuf
import TTRPC

/// The agent API as served in the guest. Every request is validated here: the host is trusted less
/// than nothing by PID 1, since a crash of PID 1 panics the guest kernel.
struct AgentService: Swiftkata_Agent_V1_AgentService {
    let reaper: Reaper
    let containers: ContainerManager
    let portForwards = PortForwards()
    /// Made when the service is, at the agent's start: before anything was hot-plugged.
    let resources = GuestResources()
    let logger: Logger

    static let version = "0.1.0"
    /// Largest OCI spec or process JSON accepted.
    static let maxSpecBytes = 1 << 20

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
        let status = procKilobytes("/proc/self/status")
        response.agentRssBytes = (status["VmRSS"] ?? 0) * 1024
        let meminfo = procKilobytes("/proc/meminfo")
        response.guestMemoryUsedBytes = ((meminfo["MemTotal"] ?? 0) - min(meminfo["MemTotal"] ?? 0, meminfo["MemAvailable"] ?? 0)) * 1024
        response.guestMemoryTotalBytes = (meminfo["MemTotal"] ?? 0) * 1024
        return response
    }

    /// "Name:   123 kB" lines of /proc/self/status or /proc/meminfo, in kB.
    private func procKilobytes(_ path: String) -> [String: UInt64] {
        ProcKeyValues.parse(readFilePrefix(path, limit: 65536) ?? [])
    }

    func createSandbox(_ request: Swiftkata_Agent_V1_CreateSandboxRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty {
        await leaveEventLoop()  // mounts and network setup block
        // Everything is validated before anything in the guest changes.
        let network: PodNetwork
        let sysctls: [PodSysctl]
        do {
            network = try PodNetwork.validate(
                interfaces: request.interfaces.map { interface in
                    PodNetwork.InterfaceRequest(
                        macAddress: interface.macAddress, deviceMacAddress: interface.deviceMacAddress,
                        name: interface.name, mtu: interface.mtu,
                        addresses: interface.addresses.map { ($0.address, $0.prefixLength) })
                },
                routes: request.routes.map { PodNetwork.RouteRequest(destination: $0.destination, gateway: $0.gateway, device: $0.device, scope: $0.scope) })
            sysctls = try PodSysctl.validate(request.sysctls)
        } catch {
            throw TTRPCError(.invalidArgument, "CreateSandbox: \(error)")
        }
        if request.hasDns {
            try writeResolvConf(request.dns)
        }
        if !request.hostname.isEmpty {
            guard request.hostname.utf8.count <= 64 else { throw TTRPCError(.invalidArgument, "hostname longer than 64 bytes") }
            guard sethostname(request.hostname, request.hostname.utf8.count) == 0 else {
                throw TTRPCError(.internal, "sethostname: \(String(cString: strerror(errno)))")
            }
        }
        let clock = ContinuousClock()
        let mounting = clock.now
        if request.hasSharedFs && request.sharedFs.type != .sharedFilesystemNone {
            try SharedFilesystem.mount(request.sharedFs, at: containers.sharedRoot)
        }
        let networking = clock.now
        try GuestNetwork.apply(network)
        try GuestSysctls.write(sysctls)
        logger.info(
            "sandbox created",
            metadata: [
                "interfaces": "\(network.interfaces.map(\.name))", "routes": "\(network.routes.count)", "sysctls": "\(sysctls.count)",
                "shared_fs_ms": "\((networking - mounting).milliseconds)", "network_ms": "\((clock.now - networking).milliseconds)",
            ])
        return Google_Protobuf_Empty()
    }

    /// The guest's /etc/resolv.conf, from the pod's DNS settings (bounded: 3 servers, 6 search domains).
    private func writeResolvConf(_ dns: Swiftkata_Agent_V1_DNSConfig) throws {
        guard dns.nameservers.count <= 3, dns.searches.count <= 6, dns.options.count <= 16 else {
            throw TTRPCError(.invalidArgument, "DNS: at most 3 nameservers, 6 search domains and 16 options")
        }
        let entries = dns.nameservers + dns.searches + dns.options
        guard entries.allSatisfy({ !$0.isEmpty && $0.utf8.count <= 253 && !$0.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7f }) }) else {
            throw TTRPCError(.invalidArgument, "DNS: entries must be non-empty words of at most 253 bytes")
        }
        var text = dns.nameservers.map { "nameserver \($0)\n" }.joined()
        if !dns.searches.isEmpty { text += "search \(dns.searches.joined(separator: " "))\n" }
        if !dns.options.isEmpty { text += "options \(dns.options.joined(separator: " "))\n" }
        let fd = open("/etc/resolv.conf", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw TTRPCError(.internal, "writing /etc/resolv.conf: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        guard bytes.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == bytes.count else {
            throw TTRPCError(.internal, "writing /etc/resolv.conf: \(String(cString: strerror(errno)))")
        }
    }

    func destroySandbox(_ request: Swiftkata_Agent_V1_DestroySandboxRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty {
        await containers.removeAll()
        // The host destroys the VM next; unmount the shared file system so nothing holds host files.
        if umount2(containers.sharedRoot, Int32(MNT_DETACH)) != 0 && errno != EINVAL && errno != ENOENT {
            throw TTRPCError(.internal, "unmounting \(containers.sharedRoot): \(String(cString: strerror(errno)))")
        }
        return Google_Protobuf_Empty()
    }

    func createContainer(
        _ request: Swiftkata_Agent_V1_CreateContainerRequest, context: TTRPCCallContext
    ) async throws -> Swiftkata_Agent_V1_CreateContainerResponse {
        guard request.ociSpec.count <= Self.maxSpecBytes else { throw TTRPCError(.invalidArgument, "OCI spec larger than \(Self.maxSpecBytes) bytes") }
        guard request.blockDevices.count <= 16 else { throw TTRPCError(.invalidArgument, "\(request.blockDevices.count) block devices, at most 16") }
        var response = Swiftkata_Agent_V1_CreateContainerResponse()
        response.pid = UInt32(
            try await containers.create(
                id: request.containerID, spec: Array(request.ociSpec), terminal: request.terminal, stdin: request.stdin,
                blockDevices: request.blockDevices.map { ($0.serial, $0.containerPath) }))
        return response
    }

    func startContainer(
        _ request: Swiftkata_Agent_V1_StartContainerRequest, context: TTRPCCallContext
    ) async throws -> Swiftkata_Agent_V1_StartContainerResponse {
        var response = Swiftkata_Agent_V1_StartContainerResponse()
        response.pid = UInt32(try await containers.start(id: request.containerID))
        return response
    }

    func removeContainer(_ request: Swiftkata_Agent_V1_RemoveContainerRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty {
        try await containers.remove(id: request.containerID)
        return Google_Protobuf_Empty()
    }

    func pauseContainer(_ request: Swiftkata_Agent_V1_PauseContainerRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty {
        try await containers.setPaused(id: request.containerID, true)
        return Google_Protobuf_Empty()
    }

    func resumeContainer(_ request: Swiftkata_Agent_V1_ResumeContainerRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty {
        try await containers.setPaused(id: request.containerID, false)
        return Google_Protobuf_Empty()
    }

    func updateContainer(_ request: Swiftkata_Agent_V1_UpdateContainerRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty {
        guard request.resources.count <= Self.maxSpecBytes else { throw TTRPCError(.invalidArgument, "resources larger than \(Self.maxSpecBytes) bytes") }
        let resources: OCIResources
        do { resources = try OCIResources.decode(Array(request.resources)) } catch { throw TTRPCError(.invalidArgument, error.description) }
        do { try await containers.cgroup(id: request.containerID).apply(resources) } catch let error as Cgroup.CgroupError {
            throw TTRPCError(.failedPrecondition, error.description)
        }
        return Google_Protobuf_Empty()
    }

    func statsContainer(
        _ request: Swiftkata_Agent_V1_StatsContainerRequest, context: TTRPCCallContext
    ) async throws -> Swiftkata_Agent_V1_StatsContainerResponse {
        let cgroup = try await containers.cgroup(id: request.containerID)
        var stats = Swiftkata_Agent_V1_CgroupStats()
        stats.cpuStat = cgroup.keyValues("cpu.stat")
        stats.memoryStat = cgroup.keyValues("memory.stat")
        stats.memoryEvents = cgroup.keyValues("memory.events")
        stats.memoryCurrent = UInt64(cgroup.read("memory.current")?.trimmingTrailingNewlines ?? "") ?? 0
        stats.memoryMax = UInt64(cgroup.read("memory.max")?.trimmingTrailingNewlines ?? "") ?? 0
        stats.pidsCurrent = UInt64(cgroup.read("pids.current")?.trimmingTrailingNewlines ?? "") ?? 0
        stats.pidsMax = UInt64(cgroup.read("pids.max")?.trimmingTrailingNewlines ?? "") ?? 0
        var response = Swiftkata_Agent_V1_StatsContainerResponse()
        response.cgroup = stats
        return response
    }

    func listProcesses(_ request: Swiftkata_Agent_V1_ListProcessesRequest, context: TTRPCCallContext) async throws -> Swiftkata_Agent_V1_ListProcessesResponse {
        let cgroup = try await containers.cgroup(id: request.containerID)
        let execIDs = try await containers.execIDs(id: request.containerID)
        var response = Swiftkata_Agent_V1_ListProcessesResponse()
        response.processes = cgroup.pids().prefix(4096).map { pid in
            var info = Swiftkata_Agent_V1_ProcessInfo()
            info.pid = UInt32(pid)
            // containerd matches exec processes by this (ctr task ps, CRI stats).
            info.execID = execIDs[pid] ?? ""
            info.command = readText("/proc/\(pid)/comm")?.trimmingTrailingNewlines ?? ""
            return info
        }
        return response
    }

    func execProcess(_ request: Swiftkata_Agent_V1_ExecProcessRequest, context: TTRPCCallContext) async throws -> Swiftkata_Agent_V1_ExecProcessResponse {
        guard request.process.count <= Self.maxSpecBytes else { throw TTRPCError(.invalidArgument, "process spec larger than \(Self.maxSpecBytes) bytes") }
        var response = Swiftkata_Agent_V1_ExecProcessResponse()
        response.pid = UInt32(
            try await containers.exec(
                id: request.containerID, execID: request.execID, process: Array(request.process),
                terminal: request.terminal, stdin: request.stdin))
        return response
    }

    func signalProcess(_ request: Swiftkata_Agent_V1_SignalProcessRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty {
        try await containers.signal(id: request.containerID, execID: request.execID, signal: Int32(clamping: request.signal), all: request.all)
        return Google_Protobuf_Empty()
    }

    func waitProcess(_ request: Swiftkata_Agent_V1_WaitProcessRequest, context: TTRPCCallContext) async throws -> Swiftkata_Agent_V1_WaitProcessResponse {
        let process = try await containers.process(id: request.containerID, execID: request.execID)
        let exit = await reaper.wait(for: process.pid)
        var response = Swiftkata_Agent_V1_WaitProcessResponse()
        response.exitStatus = exit.status
        response.exitedAt = Google_Protobuf_Timestamp(seconds: exit.exitedAtNanos / 1_000_000_000, nanos: Int32(exit.exitedAtNanos % 1_000_000_000))
        return response
    }

    func resizeTty(_ request: Swiftkata_Agent_V1_ResizeTtyRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty {
        let process = try await containers.process(id: request.containerID, execID: request.execID)
        do { try process.io.resize(rows: UInt16(clamping: request.rows), columns: UInt16(clamping: request.columns)) } catch {
            throw TTRPCError(.failedPrecondition, "\(error)")
        }
        return Google_Protobuf_Empty()
    }

    func writeStdin(_ request: Swiftkata_Agent_V1_WriteStdinRequest, context: TTRPCCallContext) async throws -> Swiftkata_Agent_V1_WriteStdinResponse {
        let process = try await containers.process(id: request.containerID, execID: request.execID)
        var response = Swiftkata_Agent_V1_WriteStdinResponse()
        do { response.written = UInt32(try await process.io.write(ByteBuffer(bytes: request.data))) } catch {
            throw TTRPCError(.failedPrecondition, "writing stdin of \(request.containerID): \(error)")
        }
        return response
    }

    func closeStdin(_ request: Swiftkata_Agent_V1_CloseStdinRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty {
        let process = try await containers.process(id: request.containerID, execID: request.execID)
        await process.io.closeStdin()
        return Google_Protobuf_Empty()
    }

    /// ReadOutput on encoded bytes (`@ttrpc raw-handler` in agent.proto): the pipe's buffers go out
    /// as they were read (`ReadOutputReply`), so the agent's only copy of the data is the pipe's read.
    func readOutput(raw payload: ByteBuffer, context: TTRPCCallContext) async throws -> TTRPCReplyPayload {
        let request: Swiftkata_Agent_V1_ReadOutputRequest
        do { request = try Swiftkata_Agent_V1_ReadOutputRequest(serializedBuffer: payload) } catch {
            throw TTRPCError(.internal, "ReadOutput: the request does not decode: \(error)")
        }
        let (chunks, eof) = try await output(request)
        return ReadOutputReply.encode(data: chunks, eof: eof)
    }

    /// The next output of a process's stream, as the pipe buffered it.
    private func output(_ request: Swiftkata_Agent_V1_ReadOutputRequest) async throws -> ([ByteBuffer], eof: Bool) {
        let process = try await containers.process(id: request.containerID, execID: request.execID)
        let pipe: OutputPipe
        switch request.stream {
        case .stdout: pipe = process.io.stdout
        case .stderr:
            // With a terminal everything goes to stdout; stderr is empty and ended.
            guard let stderr = process.io.stderr else { return ([], true) }
            pipe = stderr
        case .UNRECOGNIZED(let value): throw TTRPCError(.invalidArgument, "unknown output stream \(value)")
        }
        let limit = request.maxBytes == 0 ? AgentProtocol.maxOutputChunk : min(Int(request.maxBytes), AgentProtocol.maxOutputChunk)
        return await pipe.read(max: limit)
    }

    func getOOMEvent(_ request: Swiftkata_Agent_V1_GetOOMEventRequest, context: TTRPCCallContext) async throws -> Swiftkata_Agent_V1_OOMEvent {
        var event = Swiftkata_Agent_V1_OOMEvent()
        event.containerID = await containers.oomWatcher.next()
        return event
    }

    // MARK: Port forwarding

    func openPortForward(
        _ request: Swiftkata_Agent_V1_OpenPortForwardRequest, context: TTRPCCallContext
    ) async throws
        -> Swiftkata_Agent_V1_OpenPortForwardResponse
    {
        let id = try await portForwards.open(port: request.port)
        return .with { $0.connectionID = id }
    }

    func writePortForward(
        _ request: Swiftkata_Agent_V1_WritePortForwardRequest, context: TTRPCCallContext
    ) async throws
        -> Swiftkata_Agent_V1_WritePortForwardResponse
    {
        let connection = try await portForwards.connection(request.connectionID)
        let data = [UInt8](request.data)
        let written = await onBlockingThread { (try? writeAll(fd: connection.fd, data)) != nil }
        guard written else {
            throw AgentError(code: .failedPrecondition, description: "forwarded connection \(request.connectionID): the pod's side closed it")
        }
        return .with { $0.written = UInt32(data.count) }
    }

    func readPortForward(
        _ request: Swiftkata_Agent_V1_ReadPortForwardRequest, context: TTRPCCallContext
    ) async throws
        -> Swiftkata_Agent_V1_ReadPortForwardResponse
    {
        let connection = try await portForwards.connection(request.connectionID)
        let limit = request.maxBytes == 0 ? AgentProtocol.maxOutputChunk : min(Int(request.maxBytes), AgentProtocol.maxOutputChunk)
        let chunk = await onBlockingThread { readChunk(fd: connection.fd, limit: limit) }
        return .with {
            $0.data = Data(chunk)
            $0.eof = chunk.isEmpty
        }
    }

    func closePortForward(_ request: Swiftkata_Agent_V1_ClosePortForwardRequest, context: TTRPCCallContext) async throws -> Google_Protobuf_Empty {
        try await portForwards.close(request.connectionID, writeOnly: request.writeOnly)
        return Google_Protobuf_Empty()
    }

    func adjustResources(
        _ request: Swiftkata_Agent_V1_AdjustResourcesRequest, context: TTRPCCallContext
    ) async throws -> Swiftkata_Agent_V1_AdjustResourcesResponse {
        guard (1...GuestResources.maxCPUs).contains(Int(request.vcpus)) else {
            throw AgentError(code: .invalid, description: "vcpus \(request.vcpus) is outside 1...\(GuestResources.maxCPUs)")
        }
        guard request.pluggedMemoryBytes <= UInt64(1) << 50 else {
            throw AgentError(code: .invalid, description: "plugged memory \(request.pluggedMemoryBytes) is above 1 PiB")
        }
        let timeout = Duration.milliseconds(min(request.timeoutMs, 60_000))
        await leaveEventLoop()  // onlining vCPUs blocks in sysfs writes
        let reached = await resources.adjust(vcpus: Int(request.vcpus), pluggedBytes: request.pluggedMemoryBytes, timeout: timeout)
        logger.info(
            "resources adjusted",
            metadata: [
                "vcpus": "\(reached.onlineVCPUs)/\(request.vcpus)",
                "plugged_mib": "\(reached.pluggedBytes >> 20)/\(request.pluggedMemoryBytes >> 20)",
            ])
        return .with {
            $0.onlineVcpus = UInt32(reached.onlineVCPUs)
            $0.pluggedMemoryBytes = reached.pluggedBytes
        }
    }

    func startDebugConsole(
        _ request: Swiftkata_Agent_V1_StartDebugConsoleRequest, context: TTRPCCallContext
    ) async throws -> Swiftkata_Agent_V1_StartDebugConsoleResponse {
        let (pid, containerID) = try await containers.startDebugConsole(
            consoleID: request.consoleID, rows: UInt16(clamping: request.rows), columns: UInt16(clamping: request.columns))
        var response = Swiftkata_Agent_V1_StartDebugConsoleResponse()
        response.pid = UInt32(pid)
        response.containerID = containerID
        return response
    }
}

/// Moves the calling handler off the ttrpc connection's event loop, onto Swift's global executor.
/// A handler starts on the event loop and runs there until it first suspends (TTRPCServerHandler);
/// one that blocks before it would call into an actor (mounts, sysfs writes) calls this first, so
/// that the connection's other calls and streams are not held up meanwhile.
func leaveEventLoop() async {
    await Task.yield()
}
