import Glibc
import Hypervisor
import Logging
import SwiftKataConfig
import TTRPC

/// The pod's VM as the task service sees it: the agent in it, QEMU's pid (the pid containerd shows
/// for every task of the pod), its death, and its teardown. `PodVM` is the real one; tests drive
/// `Pod` with fakes.
protocol PodMachine: AnyObject, Sendable {
    /// The guest agent's calls.
    var agent: GuestAgent { get }
    /// Whether the connection to the agent is still up (a closed one fails every call at once).
    var isAgentConnected: Bool { get }
    /// QEMU's pid.
    var qemuPID: pid_t { get }
    /// The domain's name, for logs.
    var domainName: String { get }
    /// The pod network carried into the VM, as `delete` needs it to remove the tap after a crash.
    var networkRecord: (namespacePath: String, interface: String)? { get }
    /// The VM's lifecycle: `.stopped` once QEMU is gone.
    var events: AsyncStream<DomainLifecycleEvent> { get }
    /// QEMU's own last words (libvirt's log of the domain), for the error after an unexpected stop.
    func lastWords() -> String
    /// Destroys the VM (idempotent), closes the agent connection and removes the pod's tap.
    func destroy() async
    /// Tops up the warm pool with a VM like this one, if the configuration keeps a pool.
    func refillWarmPool(logger: Logger) async
    /// What operators' tools are told of the VM (`swiftkata-ctl`).
    var report: PodMachineReport { get }
    /// Reports each agent call that finishes from now on (the pod's statistics).
    func observeAgentCalls(_ observer: @escaping TTRPCCallObserver)
    /// How far the running VM can grow (nil: it keeps the size it booted with, `report.size`).
    var hotplugCeiling: VMSize? { get }
    /// Resizes the running VM from `current` to `size` (at least its boot size, at most the
    /// ceiling) and returns what the guest has once it took the change, or stopped waiting for it.
    func resize(from current: VMSize, to size: VMSize) async throws(ShimError) -> VMSize
    /// Attaches a host block device to the running VM as a virtio-blk disk with the volume's serial.
    func attach(_ volume: BlockVolume) async throws(ShimError)
    /// Releases the disk with the volume's serial (best effort: the VM's end releases it too).
    func detach(_ volume: BlockVolume) async
}

/// A running pod VM as operators see it: its processes, how it was started and how long that took.
struct PodMachineReport: Sendable, Equatable {
    /// The phases of the VM's start.
    struct BootPhases: Sendable, Equatable {
        /// Sizing, configuration, the network's inspection or the warm-pool claim.
        var prepare: Duration
        /// libvirt's domain start (about zero for a warm-pool VM).
        var domainStart: Duration
        /// From the running domain to the agent's first answer.
        var agentReady: Duration
        /// CreateSandbox in the guest and the port forwarder.
        var sandbox: Duration
        var total: Duration
    }

    var domainName: String
    var qemuPID: pid_t
    /// Root's virtiofsd serving the pod's share (nil with 9p).
    var fileServerPID: pid_t?
    var accelerator: String
    var transport: String
    var claimedFromPool: Bool
    var size: VMSize
    var boot: BootPhases
    /// Seconds since the epoch when the VM was ready.
    var readyAt: Int64
}

/// Boots pod VMs: the seam between the task service and libvirt.
protocol PodMachineProvider: Sendable {
    /// A running VM for the pod `layout` with its agent ready and its sandbox created; on failure no
    /// VM is left running (the caller removes the pod's directory).
    func boot(layout: PodLayout, setup: SandboxSetup) async throws(ShimError) -> any PodMachine
}

/// Pod VMs through libvirt (`PodVM`).
struct LibvirtPodMachines: PodMachineProvider {
    let configuration: Configuration
    let logger: Logger

    func boot(layout: PodLayout, setup: SandboxSetup) async throws(ShimError) -> any PodMachine {
        try await PodVM.boot(layout: layout, configuration: configuration, sandbox: setup, logger: logger)
    }
}
