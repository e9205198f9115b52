import Glibc
import Hypervisor
import SwiftKataOS
import Synchronization

/// The host process that stands for one container of a pod (`swiftkata-anchor`): its pid is the
/// container's task pid. containerd builds namespace paths from task pids (`/proc/<pid>/ns/pid` for
/// `kubectl debug --target`), and with every task reporting QEMU's pid the shim could not tell the
/// target from the sandbox. Each container that joins a running pod gets one; it dies with its
/// container's Delete, or with the shim (PR_SET_PDEATHSIG).
final class ContainerAnchor: Sendable {
    static let binaryName = "swiftkata-anchor"
    let pid: pid_t
    /// Set by the first `stop`: a second one (the VM's shutdown and the container's Delete can both
    /// come) must not signal or wait for a pid that was reaped and may be another child's by now.
    private let stopped = Atomic<Bool>(false)

    private init(pid: pid_t) { self.pid = pid }

    /// Starts an anchor, or nil where the binary is missing (the container then reports QEMU's pid,
    /// as before, and `--target` lands in the sandbox's namespace).
    static func start() throws(ShimError) -> ContainerAnchor? {
        guard let binary = VMControl.locateSibling(binaryName) else { return nil }
        var options = ProcessSpawn.Options()
        options.fileActions = [
            .open(0, path: "/dev/null", flags: O_RDONLY), .open(1, path: "/dev/null", flags: O_WRONLY),
            .open(2, path: "/dev/null", flags: O_WRONLY),
        ]
        options.defaultSignalActions = true
        let pid = try ShimError.system("starting \(binaryName)") {
            try ProcessSpawn.spawn(binary, argv: [binaryName, "\(getpid())"], options: options)
        }
        return ContainerAnchor(pid: pid)
    }

    /// Kills and reaps the anchor, once.
    func stop() async {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        kill(pid, SIGKILL)
        let pid = pid
        await onBlockingThread {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        }
    }
}
