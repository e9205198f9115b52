import Glibc
import SwiftKataOS

/// The real KVM test: boot the guest under KVM with QEMU and wait (briefly) for its agent. Reading
/// CPU flags is not enough: nested KVM can create a VM whose Linux guest then hangs right after
/// decompression. The VM is the pod VM's own description, rendered for QEMU (`QEMUCommandLine`).
public enum KVMBootProbe {
    /// Waits until the agent behind the unix socket answers, or the deadline passes or QEMU exits;
    /// nil when it answered, otherwise why not. (The agent protocol is the caller's.)
    public typealias AgentWait =
        @Sendable (
            _ socketPath: String, _ deadline: ContinuousClock.Instant,
            _ isAlive: @escaping @Sendable () -> Bool
        ) async -> String?

    /// Boots `describe(directory)` under KVM, in a fresh private directory that the description's
    /// console log and agent socket go into, and removed afterwards.
    public static func boot(
        timeout: Duration = .seconds(5), describe: (_ directory: String) -> VMDescription, waitForAgent: AgentWait
    ) async -> (ok: Bool, detail: String) {
        var template = Array("/tmp/swiftkata-kvm-probe-XXXXXX".utf8CString)
        guard let created = mkdtemp(&template) else { return (false, "cannot create a probe directory: \(String(cString: strerror(errno)))") }
        let directory = String(cString: created)
        let errors = "\(directory)/qemu.err"
        defer { _ = try? OpenDirectory(path: "/tmp").removeTree(String(directory.dropFirst("/tmp/".count))) }
        var vm = describe(directory)
        vm.accelerator = .kvm
        guard case .virtioSerial(let socket, _) = vm.agentChannel else { return (false, "the probe needs a virtio-serial agent channel") }
        let arguments: [String]
        do throws(VMDescriptionError) { arguments = try QEMUCommandLine.arguments(for: vm) } catch {
            return (false, "the probe VM: \(error)")
        }
        let started = ContinuousClock.now
        guard let qemu = spawn(vm.emulator, arguments, stderrPath: errors) else {
            return (false, "cannot start \(vm.emulator): \(String(cString: strerror(errno)))")
        }
        let exited = ExitWatch(pid: qemu)
        defer {
            // SIGKILL: the VM is disposable.
            if !exited.hasExited { kill(qemu, SIGKILL) }
            exited.reap()
        }
        if await waitForAgent(socket, started + timeout, { !exited.hasExited }) == nil {
            return (true, "agent ready after \(ContinuousClock.now - started)")
        }
        if exited.hasExited {
            let message = readText(errors) ?? ""
            return (false, "QEMU exited: \(message.split(separator: "\n").first.map(String.init) ?? "no message")")
        }
        return (false, "no agent answer within \(timeout)")
    }

    /// Starts `path` with stdin and stdout on /dev/null and stderr into `stderrPath`.
    private static func spawn(_ path: String, _ arguments: [String], stderrPath: String) -> pid_t? {
        var options = ProcessSpawn.Options()
        options.fileActions = [
            .open(0, path: "/dev/null", flags: O_RDONLY), .open(1, path: "/dev/null", flags: O_WRONLY),
            .open(2, path: stderrPath, flags: O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, mode: 0o600),
        ]
        do { return try ProcessSpawn.spawn(path, argv: arguments, options: options) } catch {
            errno = error.errno.rawValue
            return nil
        }
    }
}

/// Whether a child process has exited, without reaping it early (so its pid cannot be reused
/// while we may still signal it).
private final class ExitWatch: Sendable {
    let pid: pid_t
    init(pid: pid_t) { self.pid = pid }

    var hasExited: Bool {
        var info = siginfo_t()
        return waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info._sifields._sigchld.si_pid == pid
    }

    func reap() {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    }
}
