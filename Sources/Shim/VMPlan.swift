import AgentAPI
import AgentClient
import Glibc
import Hypervisor
import Logging
import SwiftKataConfig
import SwiftKataOS

/// How every VM of one configuration is built on this host: the configuration with its files checked,
/// the accelerator probed and the agent transport chosen. Pod VMs and warm-pool VMs come from it alike.
struct VMPlan: Sendable {
    let configuration: Configuration
    let control: VMControl
    let image: GuestImage
    let accelerator: VMDescription.Accelerator
    let transport: ResolvedAgentTransport
    /// The kernel as domains get it: a read-only mount of `hypervisor.kernel` (`ReadOnlyKernel`).
    let kernel: String
    /// The host's TSC rate, given to TCG guests so they do not calibrate it (`HostTSC`).
    var tscKilohertz: UInt64? = nil

    /// The shared file system's tag, which the guest mounts by.
    static let sharedTag = "swiftkata"

    /// Checks what the VM needs on the host (helper, kernel, image) and probes the accelerator.
    static func resolve(_ configuration: Configuration, logger: Logger) async throws(ShimError) -> VMPlan {
        let hypervisor = configuration.hypervisor
        guard let helper = VMControl.locateHelper() else {
            throw .failedPrecondition("\(VMControl.helperName) is missing next to \(VMControl.currentExecutable()) (install it with `make install`)")
        }
        if access(hypervisor.kernel, R_OK) != 0 {
            throw .failedPrecondition(
                "guest kernel \(hypervisor.kernel): \(String(cString: strerror(errno))) (install it with `make install`, or set hypervisor.kernel in the configuration)"
            )
        }
        let image: GuestImage
        do throws(GuestImageError) { image = try GuestImage.load(path: hypervisor.image) } catch {
            throw .failedPrecondition("\(error) (install it with `make install`, or set hypervisor.image in the configuration)")
        }
        let probe = AcceleratorProbe { await KVMProbe.boot(kernel: hypervisor.kernel, image: image, hypervisor: hypervisor) }
        let (accelerator, reason) = await probe.choose(hypervisor.accelerator, kernelPath: hypervisor.kernel)
        if accelerator == .tcg && hypervisor.accelerator == .auto {
            logger.warning("pod VM uses TCG (software emulation)", metadata: ["reason": "\(reason)"])
        }
        let kernel = try ReadOnlyKernel.path(for: hypervisor.kernel, stateDirectory: configuration.runtime.stateDirectory)
        let tsc = accelerator == .tcg ? HostTSC.kilohertz(cacheDirectory: configuration.runtime.stateDirectory) : nil
        if accelerator == .tcg && tsc == nil {
            logger.warning("the host's TSC rate could not be measured: TCG guests calibrate their clock themselves, which a busy host can skew")
        }
        return VMPlan(
            configuration: configuration, control: VMControl(helper: helper, uri: hypervisor.libvirtURI), image: image,
            accelerator: accelerator, transport: configuration.agent.transport.resolve(), kernel: kernel, tscKilohertz: tsc)
    }

    /// The VM for the directory `layout` (a pod's, or a warm-pool entry's).
    func description(owner: VMDescription.Owner, layout: PodLayout, tap: VMDescription.Tap?, size: VMSize? = nil) -> VMDescription {
        let hypervisor = configuration.hypervisor
        var vm = VMDescription(
            configuration: hypervisor, owner: owner, accelerator: accelerator, kernel: kernel, image: image,
            agentChannel: transport == .vsock ? .vsock : .virtioSerial(socketPath: layout.agentSocket, name: AgentProtocol.serialPortName),
            consoleLog: layout.consoleLog)
        vm.sharedFilesystem =
            hypervisor.sharedFilesystem == .virtioFS
            ? .virtioFS(hostPath: layout.sharedDirectory, tag: Self.sharedTag, virtiofsd: hypervisor.virtiofsd)
            : .ninep(hostPath: layout.sharedDirectory, tag: Self.sharedTag)
        vm.tap = tap
        if configuration.agent.debugConsole { vm.kernelCommandLine += " \(AgentProtocol.debugConsoleKernelFlag)" }
        if accelerator == .tcg, let kilohertz = tscKilohertz { vm.kernelCommandLine += " tsc_early_khz=\(kilohertz)" }
        if let size {
            vm.vcpus = size.vcpus
            vm.memoryMiB = size.memoryMiB
        }
        if hypervisor.hotplug {
            let ceiling = PodSizing.hotplugCeiling(boot: VMSize(vcpus: vm.vcpus, memoryMiB: vm.memoryMiB), hypervisor: hypervisor, host: .current)
            vm.hotplug = .init(maxVCPUs: ceiling.vcpus, maxMemoryMiB: ceiling.memoryMiB)
        }
        return vm
    }

    /// Prepares `layout`'s directories, creates the tap (if any) and starts the domain. Returns the
    /// VM's identity, also saved in its directory. On failure the tap is gone and no domain runs; the
    /// caller removes the directory.
    func launch(layout: PodLayout, owner: VMDescription.Owner, tap: VMDescription.Tap?, size: VMSize? = nil) throws(ShimError) -> VMIdentity {
        try prepareDirectories(layout)
        let name = VMDescription.domainName(for: owner)
        var identity = VMIdentity(domainName: name, tapName: tap?.device, macAddress: tap?.macAddress)
        // Saved before the domain exists: `delete` (or a pool refill) finds the domain from it if this process dies.
        try identity.save(in: layout)
        let xml: String
        do { xml = try DomainXML.render(description(owner: owner, layout: layout, tap: tap, size: size)) } catch {
            throw .invalidArgument("VM description: \(error)")
        }
        let podTap = tap.map { PodTap(name: $0.device) }
        let removeTap = { _ = podTap?.remove() }
        // The helper replaces a domain of the same name left by a shim that died.
        let started: VMControl.Started
        do {
            try podTap?.create()
            started = try control.create(name: name, xml: xml)
        } catch {
            removeTap()
            if let error = error as? ShimError { throw error }
            throw .internalError("\(error); console: \(layout.consoleTail())")
        }
        // What confines QEMU is libvirt's host setting: refuse to run a pod where it is missing.
        if !configuration.hypervisor.allowUnconfinedQEMU, let confinement = QEMUConfinement.of(pid: started.qemuPID),
            !confinement.gaps.isEmpty
        {
            try? control.destroy(name: name)
            removeTap()
            let fix =
                "fix /etc/libvirt/qemu.conf (user = \"libvirt-qemu\", seccomp_sandbox = 1) and restart libvirtd, or accept it with hypervisor.allow_unconfined_qemu = true"
            throw .failedPrecondition("the pod's QEMU \(confinement.gaps.joined(separator: " and ")): a QEMU escape would be host root; \(fix)")
        }
        identity.qemuPID = started.qemuPID
        identity.vsockCID = started.vsockCID
        identity.startedAt = Int64(time(nil))
        if configuration.hypervisor.sharedFilesystem == .virtioFS { identity.fileServerSource = layout.sharedDirectory }
        do { try identity.save(in: layout) } catch {
            try? control.destroy(name: name)
            removeTap()
            throw error
        }
        return identity
    }

    /// Where the agent of the VM `identity` answers: its vsock context id, or the virtio-serial socket
    /// in `layout`'s VM directory; nil for a vsock VM without a context id.
    func agentEndpoint(of identity: VMIdentity, in layout: PodLayout) -> AgentReadiness.Endpoint? {
        guard transport == .vsock else { return .unixSocket(layout.agentSocket) }
        return identity.vsockCID.map { .vsock(cid: $0) }
    }

    /// The warm pool this plan's VMs go to: keyed by the domain XML a VM of this plan gets (with
    /// placeholder names) and by the kernel and image files themselves, so a pod only ever claims a
    /// VM it would have booted.
    var poolKey: String {
        let placeholder = PodLayout(poolEntry: "key", directory: "/pool")
        let tap = VMDescription.Tap(device: "skpool", macAddress: "52:54:00:00:00:00")
        let xml = (try? DomainXML.render(description(owner: .warmPool(entryID: "key"), layout: placeholder, tap: tap))) ?? ""
        let files = [configuration.hypervisor.kernel, image.path, configuration.hypervisor.emulator].map { path -> String in
            var info = stat()
            guard stat(path, &info) == 0 else { return "\(path):missing" }
            return "\(path):\(info.st_dev):\(info.st_ino):\(info.st_size):\(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)"
        }
        return String(Digest.sha256Hex(([xml, transport.rawValue] + files).joined(separator: "\n")).prefix(16))
    }

    /// The directory, its shared directory (a bounded tmpfs, root-only, a shared mount point), and a
    /// VM directory QEMU (running as libvirt's unprivileged user) can create its agent socket in.
    func prepareDirectories(_ layout: PodLayout) throws(ShimError) {
        try ShimError.system("creating a state directory") { try makeDirectories(layout.directory, mode: 0o711) }
        try ShimError.system("creating a state directory") { try makeDirectories(layout.sharedDirectory, mode: 0o700) }
        if !MountTable.mountPoints(under: layout.sharedDirectory).contains(layout.sharedDirectory) {
            try HostMounts.mountSharedFilesystem(layout.sharedDirectory)
        }
        // 9p is served by QEMU itself, as libvirt's user: the share must be that user's. virtio-fs
        // is served by virtiofsd as root, and the share stays root's.
        if configuration.hypervisor.sharedFilesystem == .ninep, let user = getpwnam(QEMUUser.name) {
            chown(layout.sharedDirectory, user.pointee.pw_uid, user.pointee.pw_gid)
        }
        try ShimError.system("creating a state directory") { try makeDirectories(layout.vmDirectory, mode: 0o700) }
        if let user = getpwnam(QEMUUser.name) {
            chown(layout.vmDirectory, user.pointee.pw_uid, user.pointee.pw_gid)
        }
    }
}
