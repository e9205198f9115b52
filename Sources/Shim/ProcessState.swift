import ContainerdAPI
import SwiftProtobuf

/// One process of a container (its init, or an exec) as the task service tracks it. Lives inside
/// the `Pod` actor.
final class ProcessState {
    enum Status { case created, running, stopped }

    let containerID: String
    let execID: String
    let stdio: StdioPaths
    /// An exec's OCI process (JSON), kept from Exec until Start.
    let execSpec: [UInt8]
    var status = Status.created
    /// The process id inside the guest (0 until the guest created it).
    var guestPID: UInt32 = 0
    var exitStatus: UInt32 = 0
    var exitedAt: Google_Protobuf_Timestamp?
    var copier: ProcessStdio?
    /// Ends when the copy of the process's output reached EOF (or the VM went away).
    var outputCopied: Task<Void, Never>?
    private var waiters: [CheckedContinuation<Void, Never>] = []

    init(containerID: String, execID: String, stdio: StdioPaths, execSpec: [UInt8] = []) {
        self.containerID = containerID
        self.execID = execID
        self.stdio = stdio
        self.execSpec = execSpec
    }

    /// The id containerd's TaskExit carries: the exec id, or the container id for init.
    var eventID: String { execID.isEmpty ? containerID : execID }

    /// Records the exit and wakes every Wait; false if it had already exited.
    func markExited(status: UInt32, at time: Google_Protobuf_Timestamp) -> Bool {
        guard self.status != .stopped else { return false }
        self.status = .stopped
        exitStatus = status
        exitedAt = time
        copier?.release()
        let waiting = waiters
        waiters = []
        waiting.forEach { $0.resume() }
        return true
    }

    func addWaiter(_ continuation: CheckedContinuation<Void, Never>) {
        if status == .stopped { continuation.resume() } else { waiters.append(continuation) }
    }
}

/// A container of the pod: its init process, execs and pause state.
final class ContainerState {
    let id: String
    let bundle: String
    let initProcess: ProcessState
    var execs: [String: ProcessState] = [:]
    var paused = false
    let rootfs: [Containerd_Types_Mount]
    /// The host process whose pid stands for this container (containers that joined a running pod).
    var anchor: ContainerAnchor?
    /// Its CPU and memory limits, which the pod's VM holds.
    var limits = ContainerLimits()
    /// Host block devices attached to the VM for it.
    var blockVolumes: [BlockVolume] = []

    init(id: String, bundle: String, initProcess: ProcessState, rootfs: [Containerd_Types_Mount]) {
        self.id = id
        self.bundle = bundle
        self.initProcess = initProcess
        self.rootfs = rootfs
    }

    func process(_ execID: String) -> ProcessState? {
        execID.isEmpty ? initProcess : execs[execID]
    }

    /// containerd's view of a process's status.
    func taskStatus(of process: ProcessState) -> Containerd_V1_Types_Status {
        switch process.status {
        case .created: .created
        case .stopped: .stopped
        case .running: paused && process.execID.isEmpty ? .paused : .running
        }
    }
}
