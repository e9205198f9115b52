import AgentAPI
import ContainerdAPI
import FoundationEssentials
import Glibc
import Logging
import SwiftKataConfig
import SwiftKataOS
import SwiftProtobuf
import TTRPC

/// The task service's operations on the pod's containers, with containerd's state machine
/// (SHIM-CONTRACT B.8): NotFound for unknown ids and finished processes, FailedPrecondition for
/// other transitions that are not allowed.
extension Pod {
    func container(_ id: String) throws(ShimError) -> ContainerState {
        guard let container = containers[id] else { throw .notFound("container \(id)") }
        return container
    }

    func process(_ id: String, _ execID: String) throws(ShimError) -> (ContainerState, ProcessState) {
        let container = try container(id)
        guard let process = container.process(execID) else { throw .notFound("exec \(execID) of container \(id)") }
        return (container, process)
    }

    func runningVM() throws(ShimError) -> any PodMachine {
        guard let vm else { throw .unavailable("the pod's VM is not running") }
        return vm
    }

    // MARK: Create

    func create(_ request: Containerd_Task_V2_CreateTaskRequest) async throws(ShimError) -> UInt32 {
        let id = request.id
        try validateIdentifier(id, what: "container id")
        guard containers[id] == nil else { throw .alreadyExists("container \(id)") }
        guard request.checkpoint.isEmpty else { throw .unimplemented("checkpoint restore") }
        let spec = try BundleSpec.load(bundle: request.bundle)
        if spec.requestsHostNetwork {
            // A VM has its own network stack; silently giving it none would be worse than refusing.
            throw .failedPrecondition(
                "container \(id) asks for the host's network (--net-host, hostNetwork: true), which a container in its own VM cannot share; run it without host networking, or with runc"
            )
        }
        if let shared = spec.requestedHostNamespaces.first(where: { $0 != "network" }) {
            // Running it in the VM's own namespace instead would pretend to share what it does not.
            let setting = shared == "ipc" ? "hostIPC: true" : "hostPID: true"
            throw .failedPrecondition(
                "container \(id) asks for the host's \(shared.uppercased()) namespace (\(setting)), which a container in its own VM cannot share; run it without it, or with runc"
            )
        }
        let stdio = try StdioPaths.parse(stdin: request.stdin, stdout: request.stdout, stderr: request.stderr, terminal: request.terminal)
        let podID = spec.podID(containerID: id)
        try validateIdentifier(podID, what: "sandbox id")
        let wanted = PodLayout(stateDirectory: configuration.runtime.stateDirectory, namespace: namespace, podID: podID)
        let setup = spec.sandboxSetup
        var record = ContainerRecord(containerID: id, pod: wanted, ownsVM: vm == nil, libvirtURI: configuration.hypervisor.libvirtURI)
        if vm == nil {
            record.networkNamespace = spec.networkNamespacePath
            record.cgroupPath = setup.cgroup?.path
        }
        try record.save(bundle: request.bundle)  // before anything exists that `delete` may have to undo

        // Reserve the id while the VM boots and the guest creates the container.
        let process = ProcessState(containerID: id, execID: "", stdio: stdio)
        let container = ContainerState(id: id, bundle: request.bundle, initProcess: process, rootfs: request.rootfs)
        containers[id] = container
        var timing: Logger.Metadata = [:]
        var binaryLogger: BinaryLogger?
        do {
            // First, as in containerd: a logging binary that does not come up fails Create before a VM boots.
            if let log = stdio.binaryLog {
                binaryLogger = try await BinaryLogger.start(log, containerID: id, namespace: namespace, logger: logger)
            }
            let (vm, bootedNow) = try await ensureVM(layout: wanted, setup: setup)
            await removeContainersLeftInGuest(vm: vm)
            record.ownsVM = bootedNow
            record.qemuPID = vm.qemuPID
            record.networkNamespace = vm.networkRecord?.namespacePath
            record.networkInterface = vm.networkRecord?.interface
            try record.save(bundle: request.bundle)
            // The VM grows first if the container's limits need more than it has.
            container.limits = spec.limits
            try await fitVM(reason: "creating container \(id)")
            for volume in try BlockVolumes.resolve(spec: spec, containerID: id) {
                try await vm.attach(volume)
                container.blockVolumes.append(volume)
            }
            let sharing = ContinuousClock.now
            let guestSpec = try shareFilesystems(
                of: id, spec: spec, rootfs: request.rootfs, bundle: request.bundle, layout: wanted,
                sandboxGuestPID: try sandboxGuestPID(for: spec))
            // A container joining a running pod gets a host pid of its own (see ContainerAnchor).
            if !bootedNow { container.anchor = try startAnchor() }
            let blockDevices = container.blockVolumes.map { volume in
                Swiftkata_Agent_V1_BlockDevice.with {
                    $0.serial = volume.serial
                    $0.containerPath = volume.containerPath
                }
            }
            let creating = ContinuousClock.now
            timing = ["share_ms": "\((creating - sharing).milliseconds)"]
            process.guestPID = try await vm.agent.guestPID("creating container \(id) in the guest") { agent in
                try await agent.createContainer(
                    .with {
                        $0.containerID = id
                        $0.ociSpec = Data(guestSpec)
                        $0.terminal = request.terminal
                        $0.stdin = !stdio.stdin.isEmpty
                        $0.blockDevices = blockDevices
                    }
                ).pid
            }
            timing["guest_create_ms"] = "\((ContinuousClock.now - creating).milliseconds)"
            let copier = ProcessStdio(
                paths: stdio, agent: vm.agent, containerID: id, execID: "", logger: logger, binaryLogger: binaryLogger, statistics: statistics)
            process.copier = copier
            process.outputCopied = copier.start()
        } catch {
            await binaryLogger?.abort()
            await container.anchor?.stop()
            for volume in container.blockVolumes { await vm?.detach(volume) }
            containers[id] = nil
            unshare(id, layout: wanted)
            if isEmpty && record.ownsVM { await shutdownVM() } else { await shrinkVMIfPossible(reason: "container \(id) failed to be created") }
            logger.error("create failed", metadata: ["container": "\(id)", "error": "\(error)"])
            throw error
        }

        var event = Containerd_Events_TaskCreate()
        event.containerID = id
        event.bundle = request.bundle
        event.rootfs = request.rootfs
        event.io.stdin = request.stdin
        event.io.stdout = request.stdout
        event.io.stderr = request.stderr
        event.io.terminal = request.terminal
        event.pid = taskPID(of: id)
        await publisher.publish(topic: ContainerdNames.Topic.taskCreate, event: event, typeName: "TaskCreate")
        logger.info("container created", metadata: ["container": "\(id)", "guest_pid": "\(process.guestPID)"].merging(timing) { $1 })
        return taskPID(of: id)
    }

    /// Mounts the container's rootfs and bind-mount sources under the pod's shared directory and
    /// returns the spec the guest gets.
    /// The guest pid of the pod's sandbox container, whose namespaces a pod's container may share.
    private func sandboxGuestPID(for spec: BundleSpec) throws(ShimError) -> Int32? {
        guard case .container(let sandboxID) = spec.podRole else { return nil }
        guard spec.namespaces.contains(where: { $0.path != nil && $0.type != "network" }) else { return nil }
        guard let sandbox = containers[sandboxID], sandbox.initProcess.guestPID > 0, sandbox.initProcess.status != .stopped else {
            throw .failedPrecondition("the pod's sandbox container \(sandboxID) is not running, so its namespaces cannot be joined")
        }
        return Int32(sandbox.initProcess.guestPID)
    }

    private func shareFilesystems(
        of id: String, spec: BundleSpec, rootfs: [Containerd_Types_Mount], bundle: String, layout: PodLayout,
        sandboxGuestPID: Int32?
    ) throws(ShimError) -> [UInt8] {
        let shares = ContainerShares(
            rootfs: rootfs.map { .init(type: $0.type, source: $0.source, options: $0.options) },
            rootPath: spec.rootPath, bundle: bundle,
            binds: spec.hostBindMounts.map { ($0.index, $0.source, $0.readOnly) })
        let guestSources = try filesystem.share(id, shares, in: layout)
        return try spec.guestSpec(
            rootInSharedFS: "\(PodLayout.sharedName(containerID: id))/rootfs", guestSources: guestSources,
            guestSeccomp: configuration.runtime.guestSeccomp, sandboxGuestPID: sandboxGuestPID, joinTargets: joinTargets())
    }

    /// The running containers a new one may join by their task pid (`kubectl debug --target`): each
    /// anchor's host pid, to the container's guest pid.
    private func joinTargets() -> [Int32: Int32] {
        var targets: [Int32: Int32] = [:]
        for container in containers.values {
            guard let anchor = container.anchor, container.initProcess.status != .stopped, container.initProcess.guestPID > 0 else { continue }
            targets[anchor.pid] = Int32(container.initProcess.guestPID)
        }
        return targets
    }

    /// Undoes `shareFilesystems`.
    func unshare(_ id: String, layout: PodLayout) {
        for failure in filesystem.unshare(id, in: layout) {
            logger.warning("container share: left behind", metadata: ["container": "\(id)", "reason": "\(failure)"])
        }
    }

    // MARK: Start, Exec

    func start(id: String, execID: String) async throws(ShimError) -> UInt32 {
        let (_, process) = try process(id, execID)
        guard process.status == .created else {
            throw .failedPrecondition("\(process.eventID) is \(process.status == .running ? "already running" : "stopped")")
        }
        let vm = try runningVM()
        if execID.isEmpty {
            process.guestPID = try await vm.agent.guestPID("starting container \(id)") { agent in
                try await agent.startContainer(.with { $0.containerID = id }).pid
            }
            process.status = .running
            watchExit(of: process, agent: vm.agent)
            var event = Containerd_Events_TaskStart()
            event.containerID = id
            event.pid = taskPID(of: id)
            await publisher.publish(topic: ContainerdNames.Topic.taskStart, event: event, typeName: "TaskStart")
            refillWarmPool()
        } else {
            // containerd starts an exec's logging binary at Start too; it sees the exec id as CONTAINER_ID.
            var binaryLogger: BinaryLogger?
            if let log = process.stdio.binaryLog {
                binaryLogger = try await BinaryLogger.start(log, containerID: execID, namespace: namespace, logger: logger)
            }
            do {
                let (spec, terminal, stdin) = (process.execSpec, process.stdio.terminal, !process.stdio.stdin.isEmpty)
                process.guestPID = try await vm.agent.guestPID("starting exec \(execID) in container \(id)") { agent in
                    try await agent.execProcess(
                        .with {
                            $0.containerID = id
                            $0.execID = execID
                            $0.process = Data(spec)
                            $0.terminal = terminal
                            $0.stdin = stdin
                        }
                    ).pid
                }
            } catch {
                await binaryLogger?.abort()
                throw error
            }
            process.status = .running
            let copier = ProcessStdio(
                paths: process.stdio, agent: vm.agent, containerID: id, execID: execID, logger: logger, binaryLogger: binaryLogger,
                statistics: statistics)
            process.copier = copier
            process.outputCopied = copier.start()
            watchExit(of: process, agent: vm.agent)
            var event = Containerd_Events_TaskExecStarted()
            event.containerID = id
            event.execID = execID
            event.pid = taskPID(of: id)
            await publisher.publish(topic: ContainerdNames.Topic.taskExecStarted, event: event, typeName: "TaskExecStarted")
        }
        return taskPID(of: id)
    }

    func exec(_ request: Containerd_Task_V2_ExecProcessRequest) async throws(ShimError) {
        let container = try container(request.id)
        try validateIdentifier(request.execID, what: "exec id")
        guard container.execs[request.execID] == nil else { throw .alreadyExists("exec \(request.execID)") }
        guard container.initProcess.status != .stopped else { throw .failedPrecondition("container \(request.id) is not running") }
        guard request.spec.typeURL.hasSuffix("runtime-spec/1/Process") else {
            throw .invalidArgument("exec spec type \(request.spec.typeURL) (expected \(ContainerdNames.TypeURL.ociProcess))")
        }
        let stdio = try StdioPaths.parse(stdin: request.stdin, stdout: request.stdout, stderr: request.stderr, terminal: request.terminal)
        container.execs[request.execID] = ProcessState(containerID: request.id, execID: request.execID, stdio: stdio, execSpec: Array(request.spec.value))
        var event = Containerd_Events_TaskExecAdded()
        event.containerID = request.id
        event.execID = request.execID
        await publisher.publish(topic: ContainerdNames.Topic.taskExecAdded, event: event, typeName: "TaskExecAdded")
    }

    // MARK: Signals, waiting, state

    func kill(id: String, execID: String, signal: UInt32, all: Bool) async throws(ShimError) {
        let (_, process) = try process(id, execID)
        if process.status == .stopped { throw .notFound("process \(process.eventID) already finished") }
        if !execID.isEmpty && process.status == .created { throw .failedPrecondition("exec \(execID) has not been started") }
        _ = try await runningVM().agent.call("signalling \(process.eventID)") { agent in
            try await agent.signalProcess(
                .with {
                    $0.containerID = id
                    $0.execID = execID
                    $0.signal = signal
                    $0.all = all && execID.isEmpty
                })
        }
    }

    func wait(id: String, execID: String) async throws(ShimError) -> Containerd_Task_V2_WaitResponse {
        let (_, process) = try process(id, execID)
        await withCheckedContinuation { process.addWaiter($0) }
        var response = Containerd_Task_V2_WaitResponse()
        response.exitStatus = process.exitStatus
        if let exitedAt = process.exitedAt { response.exitedAt = exitedAt }
        return response
    }

    func state(id: String, execID: String) throws(ShimError) -> Containerd_Task_V2_StateResponse {
        let (container, process) = try process(id, execID)
        var response = Containerd_Task_V2_StateResponse()
        response.id = execID.isEmpty ? id : execID
        response.execID = execID
        response.bundle = container.bundle
        response.pid = process.status == .created && !execID.isEmpty ? 0 : taskPID(of: id)
        response.status = container.taskStatus(of: process)
        response.stdin = process.stdio.stdin
        response.stdout = process.stdio.stdout
        response.stderr = process.stdio.stderr
        response.terminal = process.stdio.terminal
        if process.status == .stopped {
            response.exitStatus = process.exitStatus
            if let exitedAt = process.exitedAt { response.exitedAt = exitedAt }
        }
        return response
    }

    // MARK: Delete

    func delete(id: String, execID: String) async throws(ShimError) -> Containerd_Task_V2_DeleteResponse {
        let (container, process) = try process(id, execID)
        guard process.status != .running else {
            throw .failedPrecondition("\(process.eventID) is running; stop it before deleting")
        }
        var response = Containerd_Task_V2_DeleteResponse()
        response.pid = taskPID(of: id)
        response.exitStatus = process.exitStatus
        response.exitedAt = process.exitedAt ?? .currentTime()
        let started = ContinuousClock.now
        await awaitOutputCopied(process)
        let outputCopied = ContinuousClock.now
        if !execID.isEmpty {
            process.copier?.stopLogger()
            container.execs[execID] = nil
            return response
        }
        if let vm, vm.isAgentConnected {
            if containers.count == 1, container.blockVolumes.isEmpty {
                // The pod's last container: containerd's Shutdown follows and the VM goes with
                // everything in it, so the guest's clean-up (a cgroup removal, 10-50 ms under
                // TCG) is not waited for on the way to `ctr run --rm`'s exit.
                containersLeftInGuest.insert(id)
            } else {
                await removeInGuest(id, vm: vm)
            }
        }
        let removedInGuest = ContinuousClock.now
        _ = process.markExited(status: process.exitStatus, at: response.exitedAt)
        process.copier?.release()
        process.copier?.stopLogger()
        await container.anchor?.stop()
        if let vm, vm.isAgentConnected {
            for volume in container.blockVolumes { await vm.detach(volume) }
        }
        containers[id] = nil
        oomEvents.remove(id)
        if let layout { unshare(id, layout: layout) }
        var event = Containerd_Events_TaskDelete()
        event.containerID = id
        event.pid = response.pid
        event.exitStatus = response.exitStatus
        event.exitedAt = response.exitedAt
        await publisher.publish(topic: ContainerdNames.Topic.taskDelete, event: event, typeName: "TaskDelete")
        logger.info(
            "container deleted",
            metadata: [
                "container": "\(id)", "exit_status": "\(response.exitStatus)",
                "output_wait_ms": "\((outputCopied - started).milliseconds)", "guest_remove_ms": "\((removedInGuest - outputCopied).milliseconds)",
            ])
        if !containers.isEmpty, !container.limits.isEmpty {
            // The memory it held goes back to the host, after containerd has its answer.
            Task { await self.shrinkVMIfPossible(reason: "container \(id) was deleted") }
        }
        return response
    }

    /// Kills a created-but-never-started init and frees the container's cgroup in the guest.
    private func removeInGuest(_ id: String, vm: any PodMachine) async {
        do {
            _ = try await vm.agent.call("removing container \(id) in the guest") { agent in
                try await agent.removeContainer(.with { $0.containerID = id })
            }
        } catch {
            logger.warning("guest remove failed", metadata: ["container": "\(id)", "error": "\(error)"])
        }
    }

    /// Removes in the guest what a last-container delete left to the VM's end, when the pod gets a
    /// new container instead of its Shutdown.
    private func removeContainersLeftInGuest(vm: any PodMachine) async {
        guard !containersLeftInGuest.isEmpty, vm.isAgentConnected else { return }
        let left = containersLeftInGuest
        containersLeftInGuest = []
        for id in left.sorted() { await removeInGuest(id, vm: vm) }
    }

    // MARK: Pause, stats, processes, IO

    func setPaused(id: String, _ paused: Bool) async throws(ShimError) {
        let container = try container(id)
        guard container.initProcess.status == .running else { throw .failedPrecondition("container \(id) is not running") }
        guard container.paused != paused else { throw .failedPrecondition("container \(id) is \(paused ? "already paused" : "not paused")") }
        let agent = try runningVM().agent
        if paused {
            _ = try await agent.call("pausing container \(id)") { agent in
                try await agent.pauseContainer(.with { $0.containerID = id })
            }
        } else {
            _ = try await agent.call("resuming container \(id)") { agent in
                try await agent.resumeContainer(.with { $0.containerID = id })
            }
        }
        container.paused = paused
        if paused {
            var event = Containerd_Events_TaskPaused()
            event.containerID = id
            await publisher.publish(topic: ContainerdNames.Topic.taskPaused, event: event, typeName: "TaskPaused")
        } else {
            var event = Containerd_Events_TaskResumed()
            event.containerID = id
            await publisher.publish(topic: ContainerdNames.Topic.taskResumed, event: event, typeName: "TaskResumed")
        }
    }

    func stats(id: String) async throws(ShimError) -> Containerd_Task_V2_StatsResponse {
        _ = try container(id)
        let stats = try await runningVM().agent.call("reading stats of container \(id)") { agent in
            try await agent.statsContainer(.with { $0.containerID = id }).cgroup
        }
        var any = Google_Protobuf_Any()
        any.typeURL = ContainerdNames.TypeURL.cgroupsV2Metrics
        do { any.value = try CgroupMetrics.v2(stats).serializedBytes() } catch { throw .internalError("encoding metrics: \(error)") }
        var response = Containerd_Task_V2_StatsResponse()
        response.stats = any
        return response
    }

    /// Guest processes of the container (guest pids), with the exec id of each exec's process.
    func pids(id: String) async throws(ShimError) -> Containerd_Task_V2_PidsResponse {
        let container = try container(id)
        let processes = try await runningVM().agent.listProcesses(id: id)
        var response = Containerd_Task_V2_PidsResponse()
        // Bounded so the reply stays far below ttrpc's 4 MiB limit whatever the guest says.
        for info in processes {  // at most GuestAgent.maxListedProcesses
            var entry = Containerd_V1_Types_ProcessInfo()
            entry.pid = info.pid
            let execID = String(info.execID.prefix(128))
            if !execID.isEmpty, container.execs[execID] != nil {
                var details = Containerd_Runc_V1_ProcessDetails()
                details.execID = execID
                var any = Google_Protobuf_Any()
                any.typeURL = ContainerdNames.TypeURL.runcProcessDetails
                any.value = (try? details.serializedBytes()) ?? Data()
                entry.info = any
            }
            response.processes.append(entry)
        }
        return response
    }

    func resize(id: String, execID: String, width: UInt32, height: UInt32) async throws(ShimError) {
        let (_, process) = try process(id, execID)
        guard process.stdio.terminal, process.status != .stopped else { return }
        _ = try await runningVM().agent.call("resizing the terminal of \(process.eventID)") { agent in
            try await agent.resizeTty(
                .with {
                    $0.containerID = id
                    $0.execID = execID
                    $0.rows = height
                    $0.columns = width
                })
        }
    }

    func closeIO(id: String, execID: String, stdin: Bool) async throws(ShimError) {
        let (_, process) = try process(id, execID)
        guard stdin, let copier = process.copier else { return }
        await copier.closeGuestStdin()
    }

    func update(id: String, resources: Google_Protobuf_Any) async throws(ShimError) {
        let container = try container(id)
        guard resources.typeURL.hasSuffix("runtime-spec/1/LinuxResources") else {
            throw .invalidArgument("resources type \(resources.typeURL) (expected \(ContainerdNames.TypeURL.ociLinuxResources))")
        }
        let previous = container.limits
        let limits: ContainerLimits
        do { limits = ContainerLimits(resources: try JSONValue.decode(Array(resources.value))) } catch {
            throw .invalidArgument("the resources of container \(id) do not parse as JSON: \(error)")
        }
        // Growth comes before the guest applies limits that need it; a shrink after, once they hold.
        container.limits = limits
        let growsFirst: Bool
        do { growsFirst = try needsGrowth() } catch {
            container.limits = previous
            throw error
        }
        if growsFirst {
            do { try await fitVM(reason: "updating container \(id)") } catch {
                container.limits = previous
                throw error
            }
        }
        do {
            _ = try await runningVM().agent.call("updating container \(id)") { agent in
                try await agent.updateContainer(
                    .with {
                        $0.containerID = id
                        $0.resources = resources.value
                    })
            }
        } catch {
            container.limits = previous
            await shrinkVMIfPossible(reason: "the update of container \(id) failed")
            throw error
        }
        if !growsFirst { await shrinkVMIfPossible(reason: "container \(id) was updated") }
    }
}
