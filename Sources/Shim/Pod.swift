import AgentAPI
import ContainerdAPI
import Glibc
import Hypervisor
import Logging
import OperatorAPI
import SwiftKataConfig
import SwiftKataOS
import SwiftProtobuf
import TTRPC

/// The pod one shim daemon serves: its VM (booted by the first Create), its containers and their
/// processes. All task-service state lives here, so calls are serialised per pod; agent calls run
/// while the actor is free for others.
actor Pod {
    let namespace: String
    let configuration: Configuration
    let publisher: any TaskEventSink
    let machines: any PodMachineProvider
    let filesystem: any PodFilesystem
    /// Starts the host process that stands for a container joining the pod (`ContainerAnchor.start`).
    let startAnchor: @Sendable () throws(ShimError) -> ContainerAnchor?
    let logger: Logger
    var containers: [String: ContainerState] = [:]
    /// The VM, once booted; concurrent Creates share one boot.
    private var vmBoot: Task<any PodMachine, any Error>?
    private(set) var vm: (any PodMachine)?
    /// The VM's size now: its boot size, then what hotplug made of it (`Pod+Resize`).
    var vmSize: VMSize?
    private(set) var layout: PodLayout?
    private var vmGone = false
    private var shuttingDown = false
    /// Follows the VM's lifecycle; ends once a stop has been handled (`vmStopped`).
    private var lifecycleWatch: Task<Void, Never>?
    /// The warm pool's refill, started once the pod's first container runs; the daemon waits for it
    /// before it exits, so no VM is left half-booted.
    private var poolRefill: Task<Void, Never>?
    var oomEvents = OOMEventLimiter()
    /// The pod's agent calls and output bytes, for `swiftkata-ctl`.
    let statistics = PodStatistics()
    /// Whether the pod serves `swiftkata-ctl` on `operator.sock` in its directory (not in tests
    /// driven by fakes, which have no directory).
    private let servesOperators: Bool
    private var operatorListener: TTRPCListener?
    /// Open debug consoles: the console id `swiftkata-ctl` holds → the agent's container id for it.
    var consoles: [String: String] = [:]
    /// Containers deleted as the pod's last one, whose guest side was left to the VM's end (the
    /// Shutdown that follows destroys it); removed in the guest first if a Create comes instead.
    var containersLeftInGuest: Set<String> = []

    init(
        namespace: String, configuration: Configuration, publisher: any TaskEventSink, machines: any PodMachineProvider,
        filesystem: any PodFilesystem, startAnchor: @escaping @Sendable () throws(ShimError) -> ContainerAnchor? = ContainerAnchor.start,
        servesOperators: Bool = true, logger: Logger
    ) {
        self.servesOperators = servesOperators
        self.namespace = namespace
        self.configuration = configuration
        self.publisher = publisher
        self.machines = machines
        self.filesystem = filesystem
        self.startAnchor = startAnchor
        self.logger = logger
    }

    /// The PID containerd shows for the pod: QEMU's (0 before the VM runs).
    var taskPID: UInt32 { UInt32(clamping: vm?.qemuPID ?? 0) }

    /// The PID containerd shows for a container's tasks: its anchor's for a container that joined the
    /// pod (so that namespace paths name it), else QEMU's.
    func taskPID(of containerID: String) -> UInt32 {
        containers[containerID]?.anchor.map { UInt32(clamping: $0.pid) } ?? taskPID
    }

    var isEmpty: Bool { containers.isEmpty }

    /// The pod's VM, booting it if this is the pod's first container.
    func ensureVM(layout wanted: PodLayout, setup: SandboxSetup) async throws(ShimError) -> (any PodMachine, bootedNow: Bool) {
        if let layout, layout != wanted {
            throw .invalidArgument("this shim serves pod \(layout.podID), not \(wanted.podID)")
        }
        if vmGone { throw .unavailable("the VM of pod \(wanted.podID) has stopped") }
        if let vm { return (vm, false) }
        if let vmBoot {
            do { return (try await vmBoot.value, false) } catch { throw error as? ShimError ?? .internalError("\(error)") }
        }
        layout = wanted
        let machines = machines
        let boot = Task { () async throws -> any PodMachine in
            try await machines.boot(layout: wanted, setup: setup)
        }
        vmBoot = boot
        do {
            let booted = try await boot.value
            // Shut down while the VM booted (containerd deleted the pod meanwhile): it goes at once.
            if shuttingDown {
                await booted.destroy()
                throw ShimError.unavailable("pod \(wanted.podID) was shut down while its VM booted")
            }
            vm = booted
            vmSize = booted.report.size
            let statistics = statistics
            booted.observeAgentCalls { method, duration, failed in statistics.recordAgentCall(method: method, duration: duration, failed: failed) }
            watch(booted)
            countOnNode(NodeCounters.podsStarted)
            if servesOperators { await serveOperators(layout: wanted) }
            return (booted, true)
        } catch {
            vmBoot = nil
            layout = nil
            removePodDirectory(wanted)
            let failure = error as? ShimError ?? .internalError("\(error)")
            countOnNode(NodeCounters.bootFailure(Self.bootFailureCause(failure)))
            throw failure
        }
    }

    /// What a failed boot is counted as on the node.
    static func bootFailureCause(_ error: ShimError) -> NodeCounters.BootFailureCause {
        switch error {
        case .unavailable, .deadlineExceeded: .agentUnreachable
        case .failedPrecondition, .unimplemented: .precondition
        case .resourceExhausted: .resources
        case .invalidArgument, .notFound, .alreadyExists: .invalid
        case .internalError: .host
        }
    }

    /// Adds one to a node counter (best effort: a counter is not worth failing a pod for).
    private func countOnNode(_ name: String) {
        guard servesOperators else { return }
        NodeCounting.add(name, stateDirectory: configuration.runtime.stateDirectory, logger: logger)
    }

    /// Serves `swiftkata-ctl` (metrics, the debug console) on `operator.sock` in the pod's directory,
    /// a socket only root can connect to.
    private func serveOperators(layout: PodLayout) async {
        let path = layout.operatorSocket
        let server = TTRPCServer(services: [PodOperatorService(pod: self).serviceDefinition], logger: logger)
        do {
            operatorListener = try await server.listen(unixSocketPath: path, replacingExisting: true)
            chmod(path, 0o600)
        } catch {
            logger.warning("swiftkata-ctl cannot reach this pod", metadata: ["socket": "\(path)", "error": "\(error)"])
        }
    }

    /// Follows the VM's lifecycle and the guest's OOM events.
    private func watch(_ vm: any PodMachine) {
        lifecycleWatch = Task { [weak self] in
            for await event in vm.events {
                if case .stopped(let reason) = event {
                    await self?.vmStopped(reason)
                    return
                }
            }
        }
        Task { [weak self] in
            while let id = try? await vm.agent.call("waiting for OOM events", { agent in try await agent.getOOMEvent(.init()).containerID }) {
                guard let self else { return }
                await self.publishOOM(containerID: id)
            }
        }
    }

    private func publishOOM(containerID: String) async {
        guard containers[containerID] != nil else { return }  // the guest names only containers it was given
        guard oomEvents.admit(containerID, at: .now) else {
            if oomEvents.coalesced == 1 || oomEvents.coalesced % 1000 == 0 {
                logger.warning("OOM events coalesced", metadata: ["container": "\(containerID)", "coalesced": "\(oomEvents.coalesced)"])
            }
            return
        }
        var event = Containerd_Events_TaskOOM()
        event.containerID = containerID
        await publisher.publish(topic: ContainerdNames.Topic.taskOOM, event: event, typeName: "TaskOOM")
    }

    /// QEMU is gone: every process of the pod exits with 255, as containerd expects of a dead runtime.
    private func vmStopped(_ reason: DomainLifecycleEvent.StopReason) async {
        guard !vmGone else { return }
        vmGone = true
        if !shuttingDown {
            // libvirt's log of the domain holds QEMU's own last words; it goes with the VM.
            let qemuLog = vm?.lastWords() ?? "(none)"
            logger.error("pod VM stopped unexpectedly", metadata: ["reason": "\(reason)", "domain": "\(vm?.domainName ?? "")", "qemu_log": "\(qemuLog)"])
        }
        for container in containers.values {
            for process in [container.initProcess] + Array(container.execs.values) where process.status != .stopped {
                await exited(process, status: 255, at: .currentTime())
            }
        }
    }

    /// Records an exit, publishes `/tasks/exit`, then wakes the waiters (in that order).
    func exited(_ process: ProcessState, status: UInt32, at time: Google_Protobuf_Timestamp) async {
        guard process.status != .stopped else { return }
        var event = Containerd_Events_TaskExit()
        event.containerID = process.containerID
        event.id = process.eventID
        event.pid = taskPID(of: process.containerID)
        event.exitStatus = status
        event.exitedAt = time
        let wasStarted = process.status == .running
        if wasStarted {
            await publisher.publish(topic: ContainerdNames.Topic.taskExit, event: event, typeName: "TaskExit")
        }
        _ = process.markExited(status: status, at: time)
    }

    /// Waits for the guest process to exit and records it.
    func watchExit(of process: ProcessState, agent: GuestAgent) {
        let containerID = process.containerID
        let execID = process.execID
        let eventID = process.eventID
        Task { [weak self] in
            let status: UInt32
            do {
                let exit = try await agent.call("waiting for \(eventID)") { agent in
                    try await agent.waitProcess(
                        .with {
                            $0.containerID = containerID
                            $0.execID = execID
                        })
                }
                // An exit status is 0...255, or 128 + signal; anything else is a guest's lie.
                status = exit.exitStatus <= 255 ? exit.exitStatus : 255
            } catch {
                // The VM died (vmStopped handles it too) or the guest lost the process: it is gone either way.
                status = 255
            }
            // The host's clock stamps the exit: a time from the guest could be anything.
            await self?.exited(containerID: containerID, execID: execID, status: status, at: .currentTime())
        }
    }

    /// The guest reported the exit; it is published once the process's output reached containerd.
    private func exited(containerID: String, execID: String, status: UInt32, at time: Google_Protobuf_Timestamp) async {
        guard let process = containers[containerID]?.process(execID) else { return }
        await awaitOutputCopied(process)
        await exited(process, status: status, at: time)
    }

    /// Waits until the process's output has been copied to containerd's FIFOs, 2 s at most (a
    /// background child may hold the output open), as runc's shim waits in Delete. `ctr` stops
    /// reading once it sees the exit (containerd 1.6 closes the FIFOs in Delete), and removing the
    /// process in the guest drops its pipes: output a copy that fell behind on a loaded host had not
    /// pulled yet would be lost either way.
    func awaitOutputCopied(_ process: ProcessState) async {
        if let copied = process.outputCopied { _ = await awaitCompletion(of: copied, atMost: .seconds(2)) }
    }

    /// Destroys the VM and removes the pod's host state (after the last container, or on SIGTERM).
    func shutdownVM() async {
        // A QEMU that died on its own closed the agent connection first: its processes' waits fail at
        // once, and the last container's Delete can come here before the lifecycle watch (which sees
        // QEMU's exit through a pidfd) has reported why. Let it report first; it is bounded, for an
        // agent that closed the connection while QEMU still runs.
        if !vmGone, let vm, !vm.isAgentConnected, let lifecycleWatch {
            _ = await awaitCompletion(of: lifecycleWatch, atMost: .seconds(2))
        }
        shuttingDown = true
        await operatorListener?.close()
        operatorListener = nil
        for container in containers.values { await container.anchor?.stop() }
        // A VM still booting (the shutdown came in the middle of the first Create) is waited for and
        // destroyed: otherwise it would come up after this process is gone, with nobody to end it.
        if vm == nil, let vmBoot, let booted = try? await vmBoot.value {
            logger.warning("shutdown during the VM's boot: destroying the VM", metadata: ["domain": "\(booted.domainName)"])
            await booted.destroy()
        }
        if let vm {
            await vm.destroy()
        }
        if let layout { removePodDirectory(layout) }
        vm = nil
        vmGone = true
    }

    /// Waits for a warm-pool refill still booting (the daemon's last step, after its socket is gone,
    /// so a new shim for a reused id does not wait for the refill).
    func finishPoolRefill() async {
        await poolRefill?.value
    }

    /// Tops up the warm pool in the background (once per pod), when the configuration keeps one. It
    /// runs after the pod's first container started, so the new VM's boot does not delay that start.
    func refillWarmPool() {
        guard poolRefill == nil, !shuttingDown, configuration.pool.size > 0, let vm else { return }
        let logger = logger
        poolRefill = Task {
            await vm.refillWarmPool(logger: logger)
        }
    }

    private func removePodDirectory(_ layout: PodLayout) {
        for failure in filesystem.removePodDirectory(layout) {
            logger.warning("pod directory: left behind", metadata: ["reason": "\(failure)"])
        }
    }
}
