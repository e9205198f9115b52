import AgentAPI
import ContainerdAPI
import Foundation
import Hypervisor
import Logging
import NIOCore
import SwiftProtobuf
import Synchronization
import TTRPC

@testable import Shim

/// A guest agent in memory: processes start when asked, exit when the test says (or on SIGKILL and
/// SIGTERM, as in a real guest), and their stdout is what the test emits. Any call can be made to
/// fail; a disconnected agent fails every call, pending ones included, as a closed connection does.
actor FakeAgent: Swiftkata_Agent_V1_AgentCalls {
    struct Key: Hashable, Sendable {
        var id: String
        var exec: String = ""
    }

    private var nextPID: UInt32 = 100
    private var exits: [Key: UInt32] = [:]
    private var waiters: [Key: [CheckedContinuation<UInt32, any Error>]] = [:]
    private var pendingOutput: [Key: [UInt8]] = [:]
    private var outputEnded: Set<Key> = []
    private var readers: [Key: CheckedContinuation<Swiftkata_Agent_V1_ReadOutputResponse, any Error>] = [:]
    private var oomWaiters: [CheckedContinuation<Swiftkata_Agent_V1_OOMEvent, any Error>] = []
    private var connected = true
    /// Calls made, by method name (the wire names).
    private(set) var calls: [String] = []
    /// A method's name → the status it fails with.
    private var failures: [String: TTRPCError]
    /// Replies with this pid to Create, Start and Exec instead of a real one (a lying guest).
    private var pidOverride: UInt32?

    init(failures: [String: TTRPCError] = [:]) { self.failures = failures }

    func fail(_ method: String, with error: TTRPCError) { failures[method] = error }
    func replyWithPID(_ pid: UInt32) { pidOverride = pid }

    /// Told of each call, as a ttrpc connection's observer is (`observeAgentCalls`).
    nonisolated let observer = CallObserverBox()

    private func begin(_ method: String) throws {
        calls.append(method)
        let failure = !connected ? TTRPCError(.unavailable, "the connection is closed") : failures[method]
        observer.notify(method, failed: failure != nil)
        if let failure { throw failure }
    }

    private func newPID() -> UInt32 {
        nextPID += 1
        return pidOverride ?? nextPID
    }

    // MARK: What the test does to the guest

    /// Output the process writes to stdout.
    func emit(_ key: Key, _ text: String) {
        pendingOutput[key, default: []] += Array(text.utf8)
        deliverOutput(key)
    }

    /// The process exits with `status`; its stdout ends too unless `keepOutputOpen` (output still
    /// to come after the exit, as from a pipe the guest has not drained yet).
    func exit(_ key: Key, status: UInt32, keepOutputOpen: Bool = false) {
        guard exits[key] == nil else { return }
        exits[key] = status
        waiters.removeValue(forKey: key)?.forEach { $0.resume(returning: status) }
        if !keepOutputOpen { endOutput(key) }
    }

    func endOutput(_ key: Key) {
        outputEnded.insert(key)
        deliverOutput(key)
    }

    /// The connection is gone (QEMU died, or the VM was destroyed).
    func disconnect() {
        connected = false
        let closed = TTRPCError(.unavailable, "the connection is closed")
        waiters.values.flatMap { $0 }.forEach { $0.resume(throwing: closed) }
        waiters = [:]
        readers.values.forEach { $0.resume(throwing: closed) }
        readers = [:]
        oomWaiters.forEach { $0.resume(throwing: closed) }
        oomWaiters = []
    }

    private func deliverOutput(_ key: Key) {
        guard let reader = readers[key] else { return }
        let data = pendingOutput.removeValue(forKey: key) ?? []
        guard !data.isEmpty || outputEnded.contains(key) else { return }
        readers[key] = nil
        reader.resume(
            returning: .with {
                $0.data = Data(data)
                $0.eof = data.isEmpty && outputEnded.contains(key)
            })
    }

    // MARK: Swiftkata_Agent_V1_AgentCalls

    func health(_ request: Swiftkata_Agent_V1_HealthRequest) async throws -> Swiftkata_Agent_V1_HealthResponse {
        try begin("Health")
        return .with { $0.apiVersion = AgentProtocol.apiVersion }
    }

    func createSandbox(_ request: Swiftkata_Agent_V1_CreateSandboxRequest) async throws -> Google_Protobuf_Empty {
        try begin("CreateSandbox")
        return .init()
    }

    func destroySandbox(_ request: Swiftkata_Agent_V1_DestroySandboxRequest) async throws -> Google_Protobuf_Empty {
        try begin("DestroySandbox")
        return .init()
    }

    func createContainer(_ request: Swiftkata_Agent_V1_CreateContainerRequest) async throws -> Swiftkata_Agent_V1_CreateContainerResponse {
        try begin("CreateContainer")
        let pid = newPID()
        return .with { $0.pid = pid }
    }

    func startContainer(_ request: Swiftkata_Agent_V1_StartContainerRequest) async throws -> Swiftkata_Agent_V1_StartContainerResponse {
        try begin("StartContainer")
        let pid = newPID()
        return .with { $0.pid = pid }
    }

    func removeContainer(_ request: Swiftkata_Agent_V1_RemoveContainerRequest) async throws -> Google_Protobuf_Empty {
        try begin("RemoveContainer")
        return .init()
    }

    func pauseContainer(_ request: Swiftkata_Agent_V1_PauseContainerRequest) async throws -> Google_Protobuf_Empty {
        try begin("PauseContainer")
        return .init()
    }

    func resumeContainer(_ request: Swiftkata_Agent_V1_ResumeContainerRequest) async throws -> Google_Protobuf_Empty {
        try begin("ResumeContainer")
        return .init()
    }

    func updateContainer(_ request: Swiftkata_Agent_V1_UpdateContainerRequest) async throws -> Google_Protobuf_Empty {
        try begin("UpdateContainer")
        return .init()
    }

    /// Hot-added resources the guest does not take (a guest without the drivers, or one too busy).
    private var takesNoResources = false
    func refuseHotplug() { takesNoResources = true }

    func adjustResources(_ request: Swiftkata_Agent_V1_AdjustResourcesRequest) async throws -> Swiftkata_Agent_V1_AdjustResourcesResponse {
        try begin("AdjustResources")
        return .with {
            $0.onlineVcpus = takesNoResources ? 1 : request.vcpus
            $0.pluggedMemoryBytes = takesNoResources ? 0 : request.pluggedMemoryBytes
        }
    }

    func statsContainer(_ request: Swiftkata_Agent_V1_StatsContainerRequest) async throws -> Swiftkata_Agent_V1_StatsContainerResponse {
        try begin("StatsContainer")
        return .with { $0.cgroup.memoryCurrent = 1 << 20 }
    }

    func listProcesses(_ request: Swiftkata_Agent_V1_ListProcessesRequest) async throws -> ByteBuffer {
        try begin("ListProcesses")
        let reply = Swiftkata_Agent_V1_ListProcessesResponse.with { $0.processes = [.with { $0.pid = 1 }] }
        return try reply.serializedBuffer()
    }

    func execProcess(_ request: Swiftkata_Agent_V1_ExecProcessRequest) async throws -> Swiftkata_Agent_V1_ExecProcessResponse {
        try begin("ExecProcess")
        let pid = newPID()
        return .with { $0.pid = pid }
    }

    func signalProcess(_ request: Swiftkata_Agent_V1_SignalProcessRequest) async throws -> Google_Protobuf_Empty {
        try begin("SignalProcess")
        if request.signal == UInt32(SIGKILL) || request.signal == UInt32(SIGTERM) {
            exit(Key(id: request.containerID, exec: request.execID), status: 128 + request.signal)
        }
        return .init()
    }

    func waitProcess(_ request: Swiftkata_Agent_V1_WaitProcessRequest) async throws -> Swiftkata_Agent_V1_WaitProcessResponse {
        try begin("WaitProcess")
        let key = Key(id: request.containerID, exec: request.execID)
        let status: UInt32
        if let exited = exits[key] {
            status = exited
        } else {
            status = try await withCheckedThrowingContinuation { waiters[key, default: []].append($0) }
        }
        return .with { $0.exitStatus = status }
    }

    func resizeTty(_ request: Swiftkata_Agent_V1_ResizeTtyRequest) async throws -> Google_Protobuf_Empty {
        try begin("ResizeTty")
        return .init()
    }

    func writeStdin(_ request: Swiftkata_Agent_V1_WriteStdinRequest) async throws -> Swiftkata_Agent_V1_WriteStdinResponse {
        try begin("WriteStdin")
        return .with { $0.written = UInt32(request.data.count) }
    }

    func closeStdin(_ request: Swiftkata_Agent_V1_CloseStdinRequest) async throws -> Google_Protobuf_Empty {
        try begin("CloseStdin")
        return .init()
    }

    func readOutput(_ request: Swiftkata_Agent_V1_ReadOutputRequest) async throws -> Swiftkata_Agent_V1_ReadOutputResponse {
        try begin("ReadOutput")
        // Only stdout carries output here; stderr ends at once.
        guard request.stream == .stdout else { return .with { $0.eof = true } }
        let key = Key(id: request.containerID, exec: request.execID)
        return try await withCheckedThrowingContinuation { continuation in
            readers[key] = continuation
            deliverOutput(key)
        }
    }

    func getOOMEvent(_ request: Swiftkata_Agent_V1_GetOOMEventRequest) async throws -> Swiftkata_Agent_V1_OOMEvent {
        try begin("GetOOMEvent")
        return try await withCheckedThrowingContinuation { oomWaiters.append($0) }
    }

    // Port forwarding: every connection echoes what it is sent, and ends when the host closes it.
    private var echoed: [UInt64: [UInt8]] = [:]

    func openPortForward(_ request: Swiftkata_Agent_V1_OpenPortForwardRequest) async throws -> Swiftkata_Agent_V1_OpenPortForwardResponse {
        try begin("OpenPortForward")
        let id = UInt64(echoed.count + 1)
        echoed[id] = []
        return .with { $0.connectionID = id }
    }

    func writePortForward(_ request: Swiftkata_Agent_V1_WritePortForwardRequest) async throws -> Swiftkata_Agent_V1_WritePortForwardResponse {
        try begin("WritePortForward")
        echoed[request.connectionID, default: []] += Array(request.data)
        return .with { $0.written = UInt32(request.data.count) }
    }

    func readPortForward(_ request: Swiftkata_Agent_V1_ReadPortForwardRequest) async throws -> Swiftkata_Agent_V1_ReadPortForwardResponse {
        try begin("ReadPortForward")
        let data = echoed[request.connectionID] ?? []
        echoed[request.connectionID] = []
        return .with {
            $0.data = Data(data)
            $0.eof = data.isEmpty
        }
    }

    func closePortForward(_ request: Swiftkata_Agent_V1_ClosePortForwardRequest) async throws -> Google_Protobuf_Empty {
        try begin("ClosePortForward")
        return .init()
    }

    /// As an agent whose VM booted without the console flag.
    func startDebugConsole(_ request: Swiftkata_Agent_V1_StartDebugConsoleRequest) async throws -> Swiftkata_Agent_V1_StartDebugConsoleResponse {
        try begin("StartDebugConsole")
        throw TTRPCError(.failedPrecondition, "the debug console is disabled in this VM")
    }
}

/// A pod VM in memory around a `FakeAgent`: it can die (as QEMU killed), and counts its destroys.
final class FakeMachine: PodMachine {
    let fake: FakeAgent
    let agent: GuestAgent
    let qemuPID: pid_t = 4242
    let domainName = "swiftkata-fake"
    let networkRecord: (namespacePath: String, interface: String)? = nil
    let events: AsyncStream<DomainLifecycleEvent>
    private let lifecycle: AsyncStream<DomainLifecycleEvent>.Continuation
    private let state = Mutex((connected: true, destroyed: 0, resizes: [VMSize](), volumes: [String]()))

    init(agentFailures: [String: TTRPCError] = [:]) {
        fake = FakeAgent(failures: agentFailures)
        agent = GuestAgent(calls: fake)
        (events, lifecycle) = AsyncStream.makeStream()
    }

    var isAgentConnected: Bool { state.withLock { $0.connected } }
    var destroyCount: Int { state.withLock { $0.destroyed } }

    func lastWords() -> String { "qemu-system-x86_64: terminating on signal 9" }

    func destroy() async {
        state.withLock {
            $0.connected = false
            $0.destroyed += 1
        }
        await fake.disconnect()
        lifecycle.finish()
    }

    /// QEMU dies under the pod.
    func die() async {
        await dieWithoutReport()()
    }

    /// QEMU dies under the pod, and its exit reaches the pod only when the returned closure runs.
    func dieWithoutReport() async -> @Sendable () -> Void {
        state.withLock { $0.connected = false }
        await fake.disconnect()
        let lifecycle = lifecycle
        return { lifecycle.yield(.stopped(reason: .crashed)) }
    }

    func refillWarmPool(logger: Logger) async {}

    let report = PodMachineReport(
        domainName: "swiftkata-fake", qemuPID: 4242, fileServerPID: nil, accelerator: "tcg", transport: "virtio-serial",
        claimedFromPool: false, size: VMSize(vcpus: 1, memoryMiB: 256),
        boot: .init(
            prepare: .milliseconds(1), domainStart: .milliseconds(2), agentReady: .milliseconds(3), sandbox: .milliseconds(4), total: .milliseconds(10)),
        readyAt: 1_700_000_000)

    func observeAgentCalls(_ observer: @escaping TTRPCCallObserver) {
        fake.observer.set(observer)
    }

    let hotplugCeiling: VMSize? = VMSize(vcpus: 8, memoryMiB: 4096)
    /// The sizes the VM was resized to, in order.
    var resizes: [VMSize] { state.withLock { $0.resizes } }

    /// Block volumes attached, by serial.
    var attachedVolumes: [String] { state.withLock { $0.volumes } }
    func attach(_ volume: BlockVolume) async throws(ShimError) { state.withLock { $0.volumes.append(volume.serial) } }
    func detach(_ volume: BlockVolume) async { state.withLock { $0.volumes.removeAll { $0 == volume.serial } } }

    func resize(from current: VMSize, to size: VMSize) async throws(ShimError) -> VMSize {
        state.withLock { $0.resizes.append(size) }
        return try await PodResize.adjustGuest(agent, to: size, boot: report.size)
    }
}

/// The observer a fake agent reports its calls to, set from outside the actor without a hop.
final class CallObserverBox: Sendable {
    private let observer = Mutex<TTRPCCallObserver?>(nil)
    func set(_ new: @escaping TTRPCCallObserver) { observer.withLock { $0 = new } }
    func notify(_ method: String, failed: Bool) { observer.withLock { $0 }?(method, .zero, failed) }
}

/// Boots `FakeMachine`s, or fails the boot as the test says.
final class FakeMachines: PodMachineProvider {
    private let state = Mutex(
        (
            booted: [FakeMachine](), layouts: [PodLayout](), failure: ShimError?.none,
            agentFailures: [String: TTRPCError]()
        ))

    func failBoots(with error: ShimError?) { state.withLock { $0.failure = error } }
    /// The agents of VMs booted from now on fail these calls.
    func failAgentCalls(_ failures: [String: TTRPCError]) { state.withLock { $0.agentFailures = failures } }
    var booted: [FakeMachine] { state.withLock { $0.booted } }
    var last: FakeMachine? { booted.last }

    func boot(layout: PodLayout, setup: SandboxSetup) async throws(ShimError) -> any PodMachine {
        let result: Result<FakeMachine, ShimError> = state.withLock {
            if let failure = $0.failure { return .failure(failure) }
            let machine = FakeMachine(agentFailures: $0.agentFailures)
            $0.booted.append(machine)
            $0.layouts.append(layout)
            return .success(machine)
        }
        return try result.get()
    }
}

/// The pod's host mounts in memory: which containers are shared now, and which pod directories were removed.
final class FakeFilesystem: PodFilesystem {
    private let state = Mutex((shared: Set<String>(), removedPods: [String](), failure: ShimError?.none))

    func failShares(with error: ShimError?) { state.withLock { $0.failure = error } }
    var shared: Set<String> { state.withLock { $0.shared } }
    var removedPods: [String] { state.withLock { $0.removedPods } }

    func share(_ containerID: String, _ shares: ContainerShares, in layout: PodLayout) throws(ShimError) -> [Int: String] {
        let failure: ShimError? = state.withLock {
            if let failure = $0.failure { return failure }
            $0.shared.insert(containerID)
            return nil
        }
        if let failure { throw failure }
        return Dictionary(uniqueKeysWithValues: shares.binds.map { ($0.index, "/run/swiftkata/shared/\(containerID)/mounts/\($0.index)") })
    }

    func unshare(_ containerID: String, in layout: PodLayout) -> [String] {
        state.withLock { _ = $0.shared.remove(containerID) }
        return []
    }

    func removePodDirectory(_ layout: PodLayout) -> [String] {
        state.withLock { $0.removedPods.append(layout.podID) }
        return []
    }
}

/// Records the task events a pod publishes, in order; at each TaskExit it also notes what the
/// process's stdout file held then (the exit must come after the output).
actor RecordingEvents: TaskEventSink {
    struct Recorded: Sendable {
        var topic: String
        var event: any SwiftProtobuf.Message
        /// The stdout file's content when a TaskExit was published.
        var stdoutAtExit: String?
    }

    private(set) var recorded: [Recorded] = []
    private var stdoutFiles: [String: String] = [:]

    /// At a TaskExit for `eventID`, snapshot `path`.
    func watchStdout(of eventID: String, at path: String) { stdoutFiles[eventID] = path }

    func publish(topic: String, event: some SwiftProtobuf.Message, typeName: String) async {
        var snapshot: String?
        if let exit = event as? Containerd_Events_TaskExit, let path = stdoutFiles[exit.id] {
            snapshot = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        }
        recorded.append(Recorded(topic: topic, event: event, stdoutAtExit: snapshot))
    }

    var topics: [String] { recorded.map { $0.topic.replacingOccurrences(of: "/tasks/", with: "") } }

    var exits: [Containerd_Events_TaskExit] { recorded.compactMap { $0.event as? Containerd_Events_TaskExit } }
}

/// A log handler that keeps the messages of level warning and above.
final class CapturedLog: LogHandler, Sendable {
    private let captured = Mutex([String]())
    var messages: [String] { captured.withLock { $0 } }

    var metadata: Logger.Metadata {
        get { [:] }
        set {}
    }
    var logLevel: Logger.Level {
        get { .warning }
        set {}
    }
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { nil }
        set {}
    }

    func log(event: LogEvent) {
        captured.withLock { $0.append("\(event.message)") }
    }
}
