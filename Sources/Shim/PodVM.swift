import AgentAPI
import Glibc
import Hypervisor
import Logging
import SwiftKataConfig
import TTRPC

/// One pod's VM: a transient libvirt domain booting the guest kernel and agent, the agent session,
/// and the domain's lifecycle events.
final class PodVM: Sendable {
    let layout: PodLayout
    let control: VMControl
    let agent: AgentSession
    let qemuPID: pid_t
    let accelerator: VMDescription.Accelerator
    let transport: ResolvedAgentTransport
    /// The pod network mirrored into the VM (CRI pods), nil for a VM without a NIC.
    let network: PodNetwork?
    /// libvirt lifecycle events (and QEMU's exit, seen through a pidfd at once).
    let events: AsyncStream<DomainLifecycleEvent>

    private init(layout: PodLayout, control: VMControl, agent: AgentSession, qemuPID: pid_t,
                 accelerator: VMDescription.Accelerator, transport: ResolvedAgentTransport, network: PodNetwork?,
                 events: AsyncStream<DomainLifecycleEvent>) {
        self.layout = layout
        self.control = control
        self.agent = agent
        self.qemuPID = qemuPID
        self.accelerator = accelerator
        self.transport = transport
        self.network = network
        self.events = events
    }

    /// Boots the pod's VM and waits for its agent; on failure nothing of the VM is left running.
    static func boot(layout: PodLayout, configuration: Configuration, sandbox setup: SandboxSetup, logger: Logger) async throws(ShimError) -> PodVM {
        let hypervisor = configuration.hypervisor
        guard let helper = VMControl.locateHelper() else {
            throw .failedPrecondition("\(VMControl.helperName) is missing next to \(VMControl.currentExecutable()) (install it with `make install`)")
        }
        let control = VMControl(helper: helper, uri: hypervisor.libvirtURI)
        if access(hypervisor.kernel, R_OK) != 0 {
            throw .failedPrecondition("guest kernel \(hypervisor.kernel): \(String(cString: strerror(errno))) (install it with `make install`, or set hypervisor.kernel in the configuration)")
        }
        let image: GuestImage
        do throws(GuestImageError) { image = try GuestImage.load(path: hypervisor.image) } catch {
            throw .failedPrecondition("\(error) (install it with `make install`, or set hypervisor.image in the configuration)")
        }
        let started = ContinuousClock.now
        let probe = AcceleratorProbe { await KVMBootProbe.boot(kernel: hypervisor.kernel, image: image) }
        let (accelerator, reason) = await probe.choose(hypervisor.accelerator, kernelPath: hypervisor.kernel)
        if accelerator == .tcg && hypervisor.accelerator == .auto {
            logger.warning("pod VM uses TCG (software emulation)", metadata: ["reason": "\(reason)"])
        }
        let transport = configuration.agent.transport.resolve()

        try prepareDirectories(layout)
        var vm = VMDescription(
            owner: layout.owner, accelerator: accelerator, kernel: hypervisor.kernel, image: image,
            kernelCommandLine: hypervisor.kernelCommandLine,
            agentChannel: transport == .vsock ? .vsock : .virtioSerial(socketPath: layout.agentSocket, name: AgentProtocol.serialPortName),
            consoleLog: layout.consoleLog)
        vm.machine = hypervisor.machine
        vm.vcpus = hypervisor.vcpus
        vm.memoryMiB = hypervisor.memoryMiB
        vm.emulator = hypervisor.emulator
        vm.freePageReporting = hypervisor.freePageReporting
        vm.translationCacheMiB = hypervisor.tcgTranslationCacheMiB > 0 ? hypervisor.tcgTranslationCacheMiB : nil
        vm.sharedFilesystem = hypervisor.sharedFilesystem == .virtioFS
            ? .virtioFS(hostPath: layout.sharedDirectory, tag: sharedTag, virtiofsd: hypervisor.virtiofsd)
            : .ninep(hostPath: layout.sharedDirectory, tag: sharedTag)
        let network = try setup.networkNamespace.flatMap { path throws(ShimError) in
            try PodNetwork.inspect(namespacePath: path, tapName: PodNetwork.tapName(for: layout))
        }
        if let network {
            vm.tap = .init(device: network.tapName, macAddress: network.scan.interface.macAddress)
            if !network.scan.ignoredInterfaces.isEmpty {
                logger.warning("pod network: only one interface is carried into the VM", metadata: [
                    "carried": "\(network.scan.interface.name)", "ignored": "\(network.scan.ignoredInterfaces.joined(separator: ","))"])
            }
        }
        let xml: String
        do { xml = try DomainXML.render(vm) } catch { throw .invalidArgument("VM description: \(error)") }

        let xmlPath = "\(layout.vmDirectory)/domain.xml"
        try writeFileAtomically(xmlPath, Array(xml.utf8), mode: 0o600)
        let removeNetwork = {
            if let network { _ = PodNetwork.remove(tapName: network.tapName, namespacePath: network.namespacePath, interface: network.scan.interface.name) }
        }
        let domainStarted = ContinuousClock.now
        // The helper replaces a domain of the same pod left by a shim that died.
        let domain: VMControl.Started
        do {
            try network?.createTap()
            domain = try control.create(name: layout.domainName, xmlPath: xmlPath)
        } catch {
            removeNetwork()
            if let error = error as? ShimError { throw error }
            throw .internalError("\(error); console: \(consoleTail(layout))")
        }
        let destroy = {
            try? control.destroy(name: layout.domainName)
            removeNetwork()
        }
        do { try network?.connect() } catch {
            destroy()
            throw error
        }
        let qemuPID = domain.qemuPID
        let events = QEMUProcess.events(pid: qemuPID)

        let endpoint: AgentReadiness.Endpoint
        if transport == .vsock {
            guard let cid = domain.vsockCID else {
                destroy()
                throw .internalError("the pod VM \(layout.domainName) has no vsock context id")
            }
            endpoint = .vsock(cid: cid)
        } else {
            endpoint = .unixSocket(layout.agentSocket)
        }
        let dialTimeout = Duration.milliseconds(configuration.agent.dialTimeoutMilliseconds)
        let domainCreated = ContinuousClock.now
        let connected = await AgentReadiness.connect(endpoint, deadline: started + dialTimeout, isAlive: { kill(qemuPID, 0) == 0 })
        guard case .success(let (client, health)) = connected else {
            destroy()
            let reason = if case .failure(let error) = connected { error.description } else { "" }
            throw .unavailable("the guest agent of \(layout.domainName) did not answer within \(dialTimeout) (\(reason)); console: \(consoleTail(layout))")
        }
        guard health.apiVersion == AgentProtocol.apiVersion else {
            await client.close()
            destroy()
            throw .failedPrecondition("the guest agent speaks API \(health.apiVersion), this shim \(AgentProtocol.apiVersion): rebuild the guest image")
        }
        let agent = AgentSession(client: client, callTimeout: .milliseconds(configuration.agent.callTimeoutMilliseconds))
        let agentReady = ContinuousClock.now

        var sandbox = Swiftkata_Agent_V1_CreateSandboxRequest()
        sandbox.sandboxID = layout.podID
        if let hostname = setup.hostname, !hostname.isEmpty { sandbox.hostname = hostname }
        if let network {
            sandbox.interfaces = network.agentInterfaces
            sandbox.routes = network.agentRoutes
        }
        sandbox.sysctls = setup.networkSysctls
        sandbox.sharedFs.type = hypervisor.sharedFilesystem == .virtioFS ? .sharedFilesystemVirtioFs : .sharedFilesystem9P
        sandbox.sharedFs.tag = sharedTag
        do { try await agent.createSandbox(sandbox) } catch {
            await client.close()
            destroy()
            throw error
        }
        logger.info("pod VM ready", metadata: [
            "domain": "\(layout.domainName)", "qemu_pid": "\(qemuPID)", "accelerator": "\(accelerator)",
            "transport": "\(transport.rawValue)", "boot_ms": "\((ContinuousClock.now - started).milliseconds)",
            "prepare_ms": "\((domainStarted - started).milliseconds)", "domain_create_ms": "\((domainCreated - domainStarted).milliseconds)",
            "agent_ready_ms": "\((agentReady - domainCreated).milliseconds)", "sandbox_ms": "\((ContinuousClock.now - agentReady).milliseconds)",
            "guest_kernel": "\(health.kernelRelease)",
        ])
        return PodVM(layout: layout, control: control, agent: agent, qemuPID: qemuPID, accelerator: accelerator, transport: transport,
                     network: network, events: events)
    }

    static let sharedTag = "swiftkata"

    /// The pod directory, its shared directory as a shared mount point, and a VM directory QEMU
    /// (running as libvirt's unprivileged user) can create its agent socket in.
    private static func prepareDirectories(_ layout: PodLayout) throws(ShimError) {
        try makeDirectories(layout.directory, mode: 0o711)
        try makeDirectories(layout.sharedDirectory, mode: 0o755)
        if !HostMounts.mountPoints(under: layout.sharedDirectory).contains(layout.sharedDirectory) {
            try HostMounts.makeSharedMountPoint(layout.sharedDirectory)
        }
        try makeDirectories(layout.vmDirectory, mode: 0o700)
        if let user = getpwnam(QEMUUser.name) {
            chown(layout.vmDirectory, user.pointee.pw_uid, user.pointee.pw_gid)
        }
    }

    /// Destroys the domain (idempotent), closes the agent connection and removes the pod's tap.
    func destroy() async {
        await agent.client.close()
        do { try control.destroy(name: layout.domainName) } catch {
            // Without the helper's destroy, QEMU goes anyway (libvirt then removes the domain), if
            // libvirt's pid file still names it: a pid of a QEMU that already exited may be reused.
            if QEMUProcess.pid(ofDomain: layout.domainName) == qemuPID { kill(qemuPID, SIGKILL) }
        }
        if let network {
            _ = PodNetwork.remove(tapName: network.tapName, namespacePath: network.namespacePath, interface: network.scan.interface.name)
        }
    }

    /// The last lines of the guest console, for error messages.
    static func consoleTail(_ layout: PodLayout) -> String {
        guard let bytes = readFile(layout.consoleLog, limit: 1 << 20) ?? nil else { return "(no console output)" }
        let lines = String(decoding: bytes.suffix(2048), as: UTF8.self).split(separator: "\n").suffix(5)
        return lines.isEmpty ? "(no console output)" : lines.joined(separator: " | ")
    }
}

/// What the pod's first container says about the VM to boot.
struct SandboxSetup: Sendable, Equatable {
    var hostname: String?
    /// CNI's network namespace, mirrored into the VM (nil: the VM gets no NIC).
    var networkNamespace: String?
    /// `net.*` sysctls for the VM's network stack.
    var networkSysctls: [String: String] = [:]
}

/// The user libvirt runs QEMU as (qemu.conf `user`, Debian's default libvirt-qemu).
enum QEMUUser {
    static let name: String = {
        guard let bytes = readFile("/etc/libvirt/qemu.conf", limit: 1 << 20) else { return "libvirt-qemu" }
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
            let text = String(line).trimmingCharacters(whereSpace: true)
            guard text.hasPrefix("user"), let equals = text.firstIndex(of: "=") else { continue }
            let value = String(text[text.index(after: equals)...]).trimmingCharacters(whereSpace: true).filter { $0 != "\"" }
            if String(text.prefix(upTo: equals)).trimmingCharacters(whereSpace: true) == "user", !value.isEmpty {
                return value.hasPrefix("+") ? String(value.dropFirst()) : value
            }
        }
        return "libvirt-qemu"
    }()
}

extension Duration {
    var milliseconds: Int64 { components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000 }
}
