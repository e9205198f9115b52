import AgentAPI
import AgentClient
import CLinuxSys
import Glibc
import Hypervisor
import Logging
import OperatorAPI
import SwiftKataConfig
import SwiftKataOS
import SwiftProtobuf
import TTRPC

/// One pod's VM: a transient libvirt domain booting the guest kernel and agent (or a warm-pool VM
/// the pod claimed), the agent session, and the domain's lifecycle events.
final class PodVM: PodMachine {
    let layout: PodLayout
    let plan: VMPlan
    /// The domain and tap names (a claimed pool VM keeps the ones it booted with).
    let identity: VMIdentity
    let agent: GuestAgent
    /// The connection the agent's calls go over.
    private let client: TTRPCClient
    let qemuPID: pid_t
    /// The pod network mirrored into the VM (CRI pods), nil for a VM without a NIC.
    let network: PodNetwork?
    /// libvirt lifecycle events (and QEMU's exit, seen through a pidfd at once).
    let events: AsyncStream<DomainLifecycleEvent>
    /// The guest console into containerd's log (`runtime.debug` only).
    private let console: ConsoleForwarder?
    /// The sandbox's cgroup, which QEMU and virtiofsd joined.
    let cgroup: PodCgroup?
    /// kubectl port-forward into the VM (pods with a network namespace).
    private let portForwarder: PortForwarder?
    /// What `swiftkata-ctl` reports of this VM.
    let report: PodMachineReport
    /// Set when `destroy` begins (the watchers of the VM's processes then stand down).
    private let teardown: VMTeardown
    private let logger: Logger

    var accelerator: VMDescription.Accelerator { plan.accelerator }
    var transport: ResolvedAgentTransport { plan.transport }
    var domainName: String { identity.domainName }
    var isAgentConnected: Bool { client.isActive }
    var networkRecord: (namespacePath: String, interface: String)? {
        network.map { ($0.namespacePath, $0.scan.interface.name) }
    }

    func lastWords() -> String { plan.control.logTail(name: domainName) ?? "(none)" }

    func refillWarmPool(logger: Logger) async {
        await WarmPool(plan: plan).refill(logger: logger)
    }

    func observeAgentCalls(_ observer: @escaping TTRPCCallObserver) {
        client.observeCalls(observer)
    }

    var hotplugCeiling: VMSize? {
        let hypervisor = plan.configuration.hypervisor
        return hypervisor.hotplug ? PodSizing.hotplugCeiling(boot: report.size, hypervisor: hypervisor, host: .current) : nil
    }

    func attach(_ volume: BlockVolume) async throws(ShimError) {
        let control = plan.control
        let domainName = domainName
        let attached = await onBlockingThread { () -> Result<Void, VMControl.Failure> in
            Result { () throws(VMControl.Failure) in
                try control.attachDisk(name: domainName, source: volume.hostPath, serial: volume.serial, readOnly: volume.readOnly)
            }
        }
        if case .failure(let failure) = attached {
            throw .unavailable("attaching the block device \(volume.hostPath) to the pod VM \(domainName): \(failure.description)")
        }
    }

    func detach(_ volume: BlockVolume) async {
        let control = plan.control
        let domainName = domainName
        let detached = await onBlockingThread { () -> Result<Void, VMControl.Failure> in
            Result { () throws(VMControl.Failure) in try control.detachDisk(name: domainName, serial: volume.serial) }
        }
        if case .failure(let failure) = detached {
            logger.warning("detaching a block device failed", metadata: ["device": "\(volume.hostPath)", "error": "\(failure.description)"])
        }
    }

    func resize(from current: VMSize, to size: VMSize) async throws(ShimError) -> VMSize {
        try await PodResize(control: plan.control, domainName: domainName, boot: report.size, agent: agent, logger: logger)
            .apply(from: current, to: size)
    }

    private init(
        layout: PodLayout, plan: VMPlan, identity: VMIdentity, client: TTRPCClient, qemuPID: pid_t, network: PodNetwork?,
        cgroup: PodCgroup?, portForwarder: PortForwarder?, events: AsyncStream<DomainLifecycleEvent>, report: PodMachineReport,
        teardown: VMTeardown, logger: Logger
    ) {
        self.teardown = teardown
        self.report = report
        self.cgroup = cgroup
        self.portForwarder = portForwarder
        self.logger = logger
        self.layout = layout
        self.plan = plan
        self.identity = identity
        self.client = client
        agent = GuestAgent(
            calls: Swiftkata_Agent_V1_AgentSession(
                client, callTimeout: .milliseconds(plan.configuration.agent.callTimeoutMilliseconds)))
        self.qemuPID = qemuPID
        self.network = network
        self.events = events
        console = plan.configuration.runtime.debug ? ConsoleForwarder(path: layout.consoleLog, podID: layout.podID, logger: logger) : nil
    }

    /// Gives the pod a VM — a running one from the warm pool when the configuration keeps one, else a
    /// fresh boot — and waits for its agent; on failure nothing of the VM is left running. A claimed
    /// VM whose agent does not answer is discarded, and the pod boots its own.
    static func boot(layout: PodLayout, configuration: Configuration, sandbox setup: SandboxSetup, logger: Logger) async throws(ShimError) -> PodVM {
        let started = ContinuousClock.now
        let (size, ignored) = try PodSizing.size(annotations: setup.sizingAnnotations, hypervisor: configuration.hypervisor, host: .current)
        if !ignored.isEmpty {
            logger.warning(
                "pod annotations ignored: hypervisor.enable_annotations does not allow them",
                metadata: ["annotations": "\(ignored.joined(separator: ","))"])
        }
        let plan = try await VMPlan.resolve(configuration, logger: logger)
        let isBaseSize = size == VMSize(vcpus: configuration.hypervisor.vcpus, memoryMiB: configuration.hypervisor.memoryMiB)
        if !isBaseSize {
            logger.info("pod VM sized for the pod", metadata: ["vcpus": "\(size.vcpus)", "memory_mib": "\(size.memoryMiB)"])
        }
        let dialTimeout = Duration.milliseconds(configuration.agent.dialTimeoutMilliseconds)
        // Only with a pool: its key renders the domain XML and stats the guest's files.
        // A pool VM has the base size: a pod sized otherwise boots its own.
        if configuration.pool.size > 0, isBaseSize, let claimed = WarmPool(plan: plan).claim(into: layout, logger: logger) {
            let network: PodNetwork?
            do { network = try inspectNetwork(setup, tapName: claimed.tapName ?? PodNetwork.tapName(for: layout), logger: logger) } catch {
                WarmPool.discard(layout, fallbackControl: plan.control, logger: logger)
                throw error
            }
            // A VM booted a while ago answers at once; one published moments ago may still be booting.
            let age = Duration.seconds(max(0, Int64(time(nil)) - (claimed.startedAt ?? 0)))
            let deadline = ContinuousClock.now + max(.seconds(2), dialTimeout - age)
            switch try await attach(
                layout: layout, plan: plan, identity: claimed, network: network, claimed: true, size: size, setup: setup,
                timing: (started, ContinuousClock.now), deadline: deadline, logger: logger)
            {
            case .ready(let vm):
                NodeCounting.add(NodeCounters.warmPoolHits, stateDirectory: configuration.runtime.stateDirectory, logger: logger)
                return vm
            case .agentUnreachable(let reason):
                logger.warning(
                    "warm pool: the claimed VM's agent did not answer; booting a VM for the pod",
                    metadata: [
                        "domain": "\(claimed.domainName)", "reason": "\(reason)",
                    ])
                WarmPool.discard(layout, fallbackControl: plan.control, logger: logger)
            }
        }
        if configuration.pool.size > 0, isBaseSize {
            NodeCounting.add(NodeCounters.warmPoolMisses, stateDirectory: configuration.runtime.stateDirectory, logger: logger)
        }
        let network = try inspectNetwork(setup, tapName: PodNetwork.tapName(for: layout), logger: logger)
        let domainStarted = ContinuousClock.now
        let tap = network.map { VMDescription.Tap(device: $0.tapName, macAddress: $0.scan.interface.macAddress) }
        let identity = try plan.launch(layout: layout, owner: layout.owner, tap: tap, size: size)
        switch try await attach(
            layout: layout, plan: plan, identity: identity, network: network, claimed: false, size: size, setup: setup,
            timing: (started, domainStarted), deadline: domainStarted + dialTimeout, logger: logger)
        {
        case .ready(let vm):
            return vm
        case .agentUnreachable(let reason):
            throw .unavailable("the guest agent of \(identity.domainName) did not answer within \(dialTimeout) (\(reason))")
        }
    }

    /// What CNI set up in the pod's network namespace (nil: the VM gets no NIC of the pod's).
    private static func inspectNetwork(_ setup: SandboxSetup, tapName: String, logger: Logger) throws(ShimError) -> PodNetwork? {
        let network = try setup.networkNamespace.flatMap { path throws(ShimError) in
            try PodNetwork.inspect(namespacePath: path, tapName: tapName)
        }
        if let network, !network.scan.ignoredInterfaces.isEmpty {
            logger.warning(
                "pod network: only one interface is carried into the VM",
                metadata: [
                    "carried": "\(network.scan.interface.name)", "ignored": "\(network.scan.ignoredInterfaces.joined(separator: ","))",
                ])
        }
        return network
    }

    private enum AttachOutcome {
        case ready(PodVM)
        /// The agent did not answer by the deadline (the VM is destroyed); the reason quotes the console.
        case agentUnreachable(String)
    }

    /// Connects the running VM `identity` to the pod: the network into the VM, the agent session,
    /// CreateSandbox. Every failure destroys the VM and removes its tap.
    private static func attach(
        layout: PodLayout, plan: VMPlan, identity: VMIdentity, network: PodNetwork?, claimed: Bool, size: VMSize, setup: SandboxSetup,
        timing: (started: ContinuousClock.Instant, domainStarted: ContinuousClock.Instant), deadline: ContinuousClock.Instant, logger: Logger
    ) async throws(ShimError) -> AttachOutcome {
        let teardown = VMTeardown()
        let destroy = { () async in
            teardown.begin()
            try? plan.control.destroy(name: identity.domainName)
            tap(of: network, identity: identity)?.remove()
            if let cgroup = setup.cgroup { await removeCgroup(cgroup, logger: logger) }
        }
        do {
            if let network { _ = try PodTap(name: network.tapName).connect(to: network) }
        } catch {
            await destroy()
            throw error
        }
        guard let qemuPID = identity.qemuPID else {
            await destroy()
            throw .internalError("the pod VM \(identity.domainName) has no QEMU pid")
        }
        let events = QEMUProcess.events(pid: qemuPID)
        // A claimed pool VM's virtiofsd still names the pool directory it was started on.
        let fileServer =
            plan.configuration.hypervisor.sharedFilesystem == .virtioFS
            ? VirtiofsdProcess.pids(serving: identity.fileServerSource ?? layout.sharedDirectory) : []
        watchFileServer(
            fileServer.first, of: identity.domainName, qemuPID: qemuPID, teardown: teardown, logger: logger, control: plan.control)
        // Moving QEMU and virtiofsd into the pod's cgroup (a directory and a write in each of this
        // host's cgroup v1 hierarchies) overlaps the agent's answer and CreateSandbox; the pod is
        // ready once it is done, and a teardown waits for it before removing that cgroup.
        let cgroupJoin = Task { () -> Duration in
            await onBlockingThread {
                let started = ContinuousClock.now
                joinPodCgroup(setup.cgroup, processes: [qemuPID] + fileServer, logger: logger)
                return ContinuousClock.now - started
            }
        }
        let destroyAfterJoin = { () async in
            _ = await cgroupJoin.value
            await destroy()
        }
        guard let endpoint = plan.agentEndpoint(of: identity, in: layout) else {
            await destroyAfterJoin()
            throw .internalError("the pod VM \(identity.domainName) has no vsock context id")
        }
        let domainCreated = ContinuousClock.now
        let watch = BootWatch.qemu(
            pid: qemuPID, console: layout.consoleLog, limit: max(.zero, deadline - ContinuousClock.now),
            stall: .milliseconds(plan.configuration.agent.bootStallMilliseconds))
        let connected = await AgentReadiness.connect(endpoint, watch: watch)
        guard case .success(let (client, health)) = connected else {
            let reason = if case .failure(let error) = connected { error.description } else { "" }
            let console = layout.consoleTail()
            await destroyAfterJoin()
            return .agentUnreachable("\(reason); console: \(console)")
        }
        guard health.apiVersion == AgentProtocol.apiVersion else {
            await client.close()
            await destroyAfterJoin()
            throw .failedPrecondition("the guest agent speaks API \(health.apiVersion), this shim \(AgentProtocol.apiVersion): rebuild the guest image")
        }
        let configuration = plan.configuration
        let agent = GuestAgent(calls: Swiftkata_Agent_V1_AgentSession(client, callTimeout: .milliseconds(configuration.agent.callTimeoutMilliseconds)))
        let agentReady = ContinuousClock.now

        var sandbox = Swiftkata_Agent_V1_CreateSandboxRequest()
        sandbox.sandboxID = layout.podID
        if let hostname = setup.hostname, !hostname.isEmpty { sandbox.hostname = hostname }
        if let network {
            sandbox.interfaces = network.agentInterfaces
            // A pool VM's NIC was booted with the pool's MAC address: the guest gives it eth0's.
            if claimed, let booted = identity.macAddress {
                for index in sandbox.interfaces.indices { sandbox.interfaces[index].deviceMacAddress = booted }
            }
            sandbox.routes = network.agentRoutes
        }
        sandbox.sysctls = setup.networkSysctls
        sandbox.sharedFs.type = configuration.hypervisor.sharedFilesystem == .virtioFS ? .sharedFilesystemVirtioFs : .sharedFilesystem9P
        sandbox.sharedFs.tag = VMPlan.sharedTag
        do { _ = try await agent.call("creating the sandbox in the guest") { agent in try await agent.createSandbox(sandbox) } } catch {
            // A guest that answered Health and then goes silent: its last console lines say why.
            let failure = if case .deadlineExceeded = error { error.appending("guest console: \(layout.consoleTail())") } else { error }
            await client.close()
            await destroyAfterJoin()
            throw failure
        }
        // Port forwarding is a convenience of the pod, not a condition of it: a host without
        // iptables still runs the pod, and says why `kubectl port-forward` will not reach it.
        var portForwarder: PortForwarder?
        if let network {
            do { portForwarder = try PortForwarder.start(namespacePath: network.namespacePath, agent: agent, logger: logger) } catch {
                logger.warning("port forwarding into the pod is off", metadata: ["reason": "\(error)"])
            }
        }
        let cgroupJoinTime = await cgroupJoin.value
        SlowDomainStart.report(domainCreated - timing.domainStarted, domain: identity.domainName, logger: logger)
        logger.info(
            "pod VM ready",
            metadata: [
                "domain": "\(identity.domainName)", "qemu_pid": "\(qemuPID)", "accelerator": "\(plan.accelerator)",
                "transport": "\(plan.transport.rawValue)", "warm_pool": "\(claimed)", "boot_ms": "\((ContinuousClock.now - timing.started).milliseconds)",
                "prepare_ms": "\((timing.domainStarted - timing.started).milliseconds)",
                "domain_create_ms": "\((domainCreated - timing.domainStarted).milliseconds)",
                "agent_ready_ms": "\((agentReady - domainCreated).milliseconds)", "sandbox_ms": "\((ContinuousClock.now - agentReady).milliseconds)",
                "cgroup_join_ms": "\(cgroupJoinTime.milliseconds)", "guest_kernel": "\(health.kernelRelease)",
            ])
        let ready = ContinuousClock.now
        let report = PodMachineReport(
            domainName: identity.domainName, qemuPID: qemuPID, fileServerPID: fileServer.first, accelerator: "\(plan.accelerator)",
            transport: plan.transport.rawValue, claimedFromPool: claimed, size: size,
            boot: .init(
                prepare: timing.domainStarted - timing.started, domainStart: domainCreated - timing.domainStarted,
                agentReady: agentReady - domainCreated, sandbox: ready - agentReady, total: ready - timing.started),
            readyAt: Int64(time(nil)))
        return .ready(
            PodVM(
                layout: layout, plan: plan, identity: identity, client: client, qemuPID: qemuPID, network: network,
                cgroup: setup.cgroup, portForwarder: portForwarder, events: events, report: report, teardown: teardown,
                logger: logger))
    }

    /// The pod's tap: the network's (in the pod's namespace) or a pool VM's unused one (in the host's).
    private static func tap(of network: PodNetwork?, identity: VMIdentity) -> PodTap? {
        network.map(PodTap.init(connectedTo:)) ?? identity.tapName.map { PodTap(name: $0) }
    }

    /// QEMU and the pod's virtiofsd join the sandbox's cgroup: the pod's limits bound the VM, and the
    /// node's stats count it. A hierarchy that refuses them is logged; the pod still runs.
    private static func joinPodCgroup(_ cgroup: PodCgroup?, processes: [pid_t], logger: Logger) {
        guard let cgroup else { return }
        for failure in cgroup.join(processes) {
            logger.warning("pod cgroup: the VM's processes could not join it", metadata: ["cgroup": "\(cgroup.path)", "reason": "\(failure)"])
        }
    }

    /// A guest whose virtio-fs server died blocks on its shared file system and never answers
    /// again, so the pod's tasks would hang for good: when the pod's virtiofsd exits, its VM is
    /// destroyed, and the pod's processes end as they do when QEMU dies (status 255, TaskExit).
    /// Its exit is ignored once the VM's teardown began or QEMU itself has gone (virtiofsd then ends
    /// because QEMU closed its socket): destroying the domain again would only hold libvirt's domain
    /// list while other pods start.
    private static func watchFileServer(
        _ serverPID: pid_t?, of domain: String, qemuPID: pid_t, teardown: VMTeardown, logger: Logger, control: VMControl
    ) {
        guard let serverPID else { return }
        let qemu = linux_pidfd_open(qemuPID)
        guard qemu >= 0 else { return }  // QEMU is gone already
        let watched = QEMUProcess.onExit(of: serverPID) {
            defer { close(qemu) }
            guard !teardown.hasStarted, !QEMUProcess.hasExited(pidfd: qemu) else { return }
            // Only this VM: a domain of that name started later (a reused id) has another QEMU.
            guard QEMUProcess.pid(ofDomain: domain) == qemuPID else { return }
            logger.error(
                "virtiofsd of the pod VM exited: the guest lost its shared file system; destroying the VM",
                metadata: [
                    "domain": "\(domain)", "virtiofsd_pid": "\(serverPID)",
                ])
            try? control.destroy(name: domain)
        }
        if watched != .watching { close(qemu) }  // the callback that closes it will never run
    }

    /// Destroys the domain (idempotent), closes the agent connection and removes the pod's tap.
    func destroy() async {
        teardown.begin()
        console?.stop()
        portForwarder?.stop()
        await client.close()
        do { try plan.control.destroy(name: domainName) } catch {
            // Without the helper's destroy, QEMU goes anyway (libvirt then removes the domain), if
            // libvirt's pid file still names it: a pid of a QEMU that already exited may be reused.
            if QEMUProcess.pid(ofDomain: domainName) == qemuPID { kill(qemuPID, SIGKILL) }
        }
        Self.tap(of: network, identity: identity)?.remove()
        if let cgroup { await Self.removeCgroup(cgroup, logger: logger) }
    }

    /// Removes the pod's cgroup once QEMU and virtiofsd have left it (they exit as the domain goes);
    /// the wait for that polls, so it runs on a thread of its own, not the cooperative pool.
    static func removeCgroup(_ cgroup: PodCgroup, logger: Logger) async {
        for failure in await onBlockingThread({ cgroup.remove() }) {
            logger.warning("pod cgroup: left behind", metadata: ["cgroup": "\(cgroup.path)", "reason": "\(failure)"])
        }
    }
}

/// What the pod's first container says about the VM to boot.
struct SandboxSetup: Sendable, Equatable {
    var hostname: String?
    /// CNI's network namespace, mirrored into the VM (nil: the VM gets no NIC).
    var networkNamespace: String?
    /// `net.*` sysctls for the VM's network stack.
    var networkSysctls: [String: String] = [:]
    /// The sandbox's cgroup on the host, which QEMU and virtiofsd join (nil: they stay in libvirt's).
    var cgroup: PodCgroup?
    /// The annotations that size the VM (`PodSizing`): containerd's sandbox resources and swiftkata's own.
    var sizingAnnotations: [String: String] = [:]
}
