import Glibc
import Hypervisor
import SwiftKataOS

/// The host process that stands for one container of a pod (`swiftkata-anchor`): its pid is the
/// container's task pid. containerd builds namespace paths from task pids (`/proc/<pid>/ns/pid` for
/// `kubectl debug --target`), and with every task reporting QEMU's pid the shim could not tell the
/// target from the sandbox. Each container that joins a running pod gets one; it dies with its
/// container's Delete, or with the shim (PR_SET_PDEATHSIG).
struct ContainerAnchor: Sendable {
    static let binaryName = "swiftkata-anchor"
    let pid: pid_t

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

    /// Kills and reaps the anchor.
    func stop() async {
        kill(pid, SIGKILL)
        let pid = pid
        await onBlockingThread {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        }
    }
}
