import AgentAPI
import Hypervisor
import Logging
import SwiftKataOS
import SwiftProtobuf

/// One resize of a running pod VM: libvirt sets the virtio-mem device's requested size (through
/// `swiftkata-vm resize`), then the agent onlines or offlines vCPUs (the VM has its maximum from
/// the start) and waits until the guest has plugged or unplugged the memory.
struct PodResize: Sendable {
    let control: VMControl
    let domainName: String
    /// The size the VM booted with: memory above it is hot-plugged.
    let boot: VMSize
    let agent: GuestAgent
    let logger: Logger

    /// How long the guest may take to online vCPUs and plug or unplug memory; below the agent
    /// call's deadline, so a slow guest is reported as slow rather than as unreachable.
    static let guestTimeout = Duration.seconds(20)

    /// Returns the size the guest reached (the guest's own account, bounded by `size`'s ceiling).
    func apply(from current: VMSize, to size: VMSize) async throws(ShimError) -> VMSize {
        let pluggedMiB = Self.pluggedMiB(for: size, boot: boot)
        let control = control
        let domainName = domainName
        let started = ContinuousClock.now
        if pluggedMiB != Self.pluggedMiB(for: current, boot: boot) {
            let resized = await onBlockingThread { () -> Result<Void, VMControl.Failure> in
                Result { () throws(VMControl.Failure) in try control.resize(name: domainName, pluggedMiB: pluggedMiB) }
            }
            if case .failure(let failure) = resized {
                throw .resourceExhausted("resizing the pod VM \(domainName) to \(size): \(failure.description)")
            }
        }
        let reached = try await Self.adjustGuest(agent, to: size, boot: boot)
        logger.info(
            "pod VM resized",
            metadata: [
                "domain": "\(domainName)", "asked": "\(size)", "guest_has": "\(reached)",
                "ms": "\((ContinuousClock.now - started).milliseconds)",
            ])
        return reached
    }

    /// Has the agent online the vCPUs and wait for the memory of a VM resized to `size`; returns the
    /// guest's account of what it has, bounded by `size` (a lying guest can only mislead its own pod).
    static func adjustGuest(_ agent: GuestAgent, to size: VMSize, boot: VMSize) async throws(ShimError) -> VMSize {
        let pluggedMiB = pluggedMiB(for: size, boot: boot)
        let reply = try await agent.call("adjusting the guest to \(size)") { agent in
            try await agent.adjustResources(
                .with {
                    $0.vcpus = UInt32(size.vcpus)
                    $0.pluggedMemoryBytes = UInt64(pluggedMiB) << 20
                    $0.timeoutMs = UInt32(guestTimeout.milliseconds)
                })
        }
        return VMSize(
            vcpus: Int(min(reply.onlineVcpus, UInt32(size.vcpus))),
            memoryMiB: boot.memoryMiB + Int(min(reply.pluggedMemoryBytes >> 20, UInt64(pluggedMiB))))
    }

    /// The virtio-mem device's requested size for a VM of `size`: what is above the boot memory, in
    /// whole device blocks.
    static func pluggedMiB(for size: VMSize, boot: VMSize) -> Int {
        let block = VMDescription.Hotplug.blockMiB
        return (max(0, size.memoryMiB - boot.memoryMiB) + block - 1) / block * block
    }
}
