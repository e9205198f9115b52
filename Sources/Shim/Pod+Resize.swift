import Hypervisor
import Logging
import SwiftKataConfig

/// The pod's VM follows its containers' limits: it grows before a container gets limits beyond it,
/// and shrinks (never below its boot size) once they are lowered or the container is gone.
extension Pod {
    /// The VM size every container's current limits need (nil: the VM does not resize).
    func sizeNeeded() throws(ShimError) -> VMSize? {
        guard let vm, vm.hotplugCeiling != nil else { return nil }
        let limits = ContainerLimits.total(containers.values.map(\.limits))
        return try PodSizing.target(boot: vm.report.size, containers: limits, hypervisor: configuration.hypervisor, host: .current)
    }

    /// Whether the containers' limits now need more than the VM has.
    func needsGrowth() throws(ShimError) -> Bool {
        guard let needed = try sizeNeeded(), let current = vmSize else { return false }
        return needed.vcpus > current.vcpus || needed.memoryMiB > current.memoryMiB
    }

    /// Resizes the VM to what the containers' limits need. A growth the host or the guest cannot
    /// give fails, naming what, and the VM is put back to its size before; a shrink the guest has
    /// not finished is only logged (the guest goes on unplugging on its own).
    func fitVM(reason: String) async throws(ShimError) {
        // Another create or update may change the limits while this one waits on the VM: each pass
        // aims at what is needed now, until nothing changes.
        for _ in 0..<3 {
            guard let vm, let current = vmSize, let target = try sizeNeeded(), target != current else { return }
            let growing = target.vcpus > current.vcpus || target.memoryMiB > current.memoryMiB
            do throws(ShimError) {
                let reached = try await vm.resize(from: current, to: target)
                if growing, reached.vcpus < target.vcpus || reached.memoryMiB + VMDescription.Hotplug.blockMiB < target.memoryMiB {
                    throw .resourceExhausted(
                        "the guest took \(reached) of the \(target) asked for within \(PodResize.guestTimeout) (\(reason))")
                }
                if !growing, reached.memoryMiB > target.memoryMiB + VMDescription.Hotplug.blockMiB {
                    logger.warning(
                        "the guest has not given all the memory back yet; it goes on unplugging",
                        metadata: ["asked": "\(target)", "guest_has": "\(reached)", "reason": "\(reason)"])
                }
                vmSize = target
            } catch {
                guard growing else {
                    logger.warning("shrinking the pod VM failed", metadata: ["asked": "\(target)", "error": "\(error)", "reason": "\(reason)"])
                    return
                }
                _ = try? await vm.resize(from: target, to: current)  // as it was: a partial growth is undone
                throw error
            }
        }
    }

    /// `fitVM` for a shrink, whose failure is logged and not the caller's.
    func shrinkVMIfPossible(reason: String) async {
        do { try await fitVM(reason: reason) } catch { logger.warning("resizing the pod VM failed", metadata: ["error": "\(error)", "reason": "\(reason)"]) }
    }
}
