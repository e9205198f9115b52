import ContainerdAPI
import Glibc
import Hypervisor
import SwiftProtobuf

/// `containerd-shim-swiftkata-v2 … delete`: cleans up after one container whose shim connection went
/// away (normally, or because the daemon died). Idempotent, and scoped to `-id`: a pod's daemon may
/// still serve its other containers. When the daemon is gone and this container booted the pod's VM,
/// the VM is destroyed and the pod's host state removed.
enum ShimDelete {
    static func run(_ arguments: ShimArguments, logger: (String) -> Void) -> Containerd_Task_V2_DeleteResponse {
        let bundle = arguments.bundle.isEmpty ? currentDirectory() : arguments.bundle
        var response = Containerd_Task_V2_DeleteResponse()
        response.exitStatus = 137
        response.exitedAt = .currentTime()

        if let record = ContainerRecord.load(bundle: bundle), record.containerID == arguments.id {
            response.pid = UInt32(clamping: record.qemuPID ?? 0)
            let share = PodLayout.sharedName(containerID: arguments.id)
            for failure in HostMounts.removeShare(share, sharedDirectory: record.pod.sharedDirectory) { logger("container share: \(failure)") }

            let address = ShimAddress.load(bundle: bundle)
            let daemonAlive = address.map { UnixSocket.isServing(path: $0.socketPath) } ?? false
            if record.ownsVM && !daemonAlive {
                destroyPod(record, logger: logger)
                if let address { unlink(address.socketPath) }
            }
        }
        for failure in HostMounts.unmountAll(under: "\(bundle)/rootfs") { logger("unmount failed: \(failure)") }
        return response
    }

    /// Destroys the pod's VM (if it still runs) and removes its host directory. The VM's names come
    /// from its identity file (a VM claimed from the warm pool keeps its own), else from the pod.
    static func destroyPod(_ record: ContainerRecord, logger: (String) -> Void) {
        let identity = VMIdentity.load(in: record.pod)
        let domainName = identity?.domainName ?? record.pod.domainName
        let qemuPID = identity?.qemuPID ?? record.qemuPID
        if let helper = VMControl.locateHelper() {
            do { try VMControl(helper: helper, uri: record.libvirtURI).destroy(name: domainName) } catch {
                logger("destroying VM \(domainName): \(error)")
            }
        } else if let pid = qemuPID, let current = QEMUProcess.pid(ofDomain: domainName), current == pid {
            // Without the helper, QEMU itself goes; libvirt cleans up the domain after it.
            kill(pid, SIGKILL)
            logger("\(VMControl.helperName) is missing: killed QEMU \(pid) of \(domainName)")
        }
        let tapName = identity?.tapName ?? PodNetwork.tapName(for: record.pod)
        for failure in PodTap(name: tapName, namespacePath: record.networkNamespace, interface: record.networkInterface).remove() {
            logger("removing the pod's tap: \(failure)")
        }
        if let path = record.cgroupPath, let cgroup = PodCgroup(cgroupsPath: path) {
            for failure in cgroup.remove() { logger("pod cgroup: \(failure)") }
        }
        for failure in HostMounts.removePodDirectory(record.pod.directory) { logger("pod directory: \(failure)") }
    }
}

extension Google_Protobuf_Timestamp {
    /// The wall-clock time now (containerd rejects zero timestamps on events).
    static func currentTime() -> Google_Protobuf_Timestamp {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Google_Protobuf_Timestamp(seconds: Int64(now.tv_sec), nanos: Int32(now.tv_nsec))
    }
}
