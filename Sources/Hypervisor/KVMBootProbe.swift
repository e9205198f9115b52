import AgentAPI
import Glibc
import TTRPC
import SwiftKataOS

/// The real KVM test: boot the configured kernel and image under KVM with QEMU and wait (briefly)
/// for the agent's Health reply. Reading CPU flags is not enough: nested KVM can create a VM whose
/// Linux guest then hangs right after decompression.
public enum KVMBootProbe {
    public static func boot(kernel: String, image: GuestImage, timeout: Duration = .seconds(5)) async -> (ok: Bool, detail: String) {
        var template = Array("/tmp/swiftkata-kvm-probe-XXXXXX".utf8CString)
        guard let created = mkdtemp(&template) else { return (false, "cannot create a probe directory: \(String(cString: strerror(errno)))") }
        let directory = String(cString: created)
        let socket = "\(directory)/agent.sock"
        let errors = "\(directory)/qemu.err"
        defer {
            for file in [socket, errors, "\(directory)/console.log"] { unlink(file) }
            rmdir(directory)
        }
        let arguments = [
            "qemu-system-x86_64", "-machine", "pc", "-accel", "kvm", "-cpu", "host", "-m", "256", "-smp", "1",
            "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
            "-kernel", kernel,
        ] + image.qemuArguments + [
            "-append", image.kernelCommandLine("console=ttyS0 quiet acpi=noirq panic=-1"),
            "-serial", "file:\(directory)/console.log",
            "-chardev", "socket,id=agent,path=\(socket),server=on,wait=off",
            "-device", "virtio-serial-pci,id=serial0",
            "-device", "virtserialport,bus=serial0.0,chardev=agent,name=\(AgentProtocol.serialPortName)",
        ]
        let started = ContinuousClock.now
        guard let qemu = spawn("/usr/bin/qemu-system-x86_64", arguments, stderrPath: errors) else {
            return (false, "cannot start qemu-system-x86_64: \(String(cString: strerror(errno)))")
        }
        let exited = ExitWatch(pid: qemu)
        defer {
            // SIGKILL: the VM is disposable.
            if !exited.hasExited { kill(qemu, SIGKILL) }
            exited.reap()
        }
        let result = await AgentReadiness.waitForHealth(socketPath: socket, deadline: started + timeout, isAlive: { !exited.hasExited })
        if case .success = result {
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
