import AgentAPI
import CLinuxSys
import Glibc
import SwiftKataOS

/// The operator's shell in the guest's own root: busybox's `sh` on a new pseudo-terminal, in a
/// session of its own with that terminal as its controlling one (so ^C reaches what it runs). It
/// exists only on a VM booted with `swiftkata.debug_console=1`, which the host adds when its
/// configuration enables the console; containers never see the guest's root, and so neither busybox.
enum DebugConsole {
    static let kernelFlag = AgentProtocol.debugConsoleKernelFlag
    static let shell = "/bin/busybox"

    /// Whether the kernel command line enables the console.
    static func isEnabled(commandLine: String) -> Bool {
        commandLine.split(whereSeparator: { $0 == " " || $0 == "\n" }).contains { $0 == kernelFlag }
    }

    static func isEnabled() -> Bool {
        isEnabled(commandLine: readText("/proc/cmdline") ?? "")
    }

    /// The process id the console's shell is known by: `@console-<id>`, which no container id can be.
    static func containerID(for consoleID: String) -> String { "@console-\(consoleID)" }

    struct ConsoleError: Error, CustomStringConvertible {
        var description: String
    }

    /// Opens a pseudo-terminal of `rows` x `columns` and starts the shell on its slave; returns the
    /// shell's pid and the master (the caller owns it).
    static func start(rows: UInt16, columns: UInt16) throws(ConsoleError) -> (pid: pid_t, master: CInt) {
        var master: CInt = -1
        var slave: CInt = -1
        guard linux_open_pty(&master, &slave) == 0 else {
            throw ConsoleError(description: "opening a pseudo-terminal: \(String(cString: strerror(errno)))")
        }
        var size = winsize(ws_row: rows == 0 ? 24 : rows, ws_col: columns == 0 ? 80 : columns, ws_xpixel: 0, ws_ypixel: 0)
        _ = ioctl(master, UInt(TIOCSWINSZ), &size)
        defer { close(slave) }
        var options = ProcessSpawn.Options()
        options.fileActions = [.duplicate(slave, to: 0), .duplicate(slave, to: 1), .duplicate(slave, to: 2), .closeFrom(3)]
        options.environment = [
            "PATH=/bin:/sbin:/usr/bin:/usr/sbin", "HOME=/", "TERM=xterm", "SHELL=/bin/sh",
            "PS1=[swiftkata-debug \\w]# ",
        ]
        options.defaultSignalActions = true
        do {
            // `setsid -c`: a new session whose controlling terminal is stdin, then the shell; the
            // pid stays the shell's (the child is no process group leader, so setsid does not fork).
            let pid = try ProcessSpawn.spawn(shell, argv: ["setsid", "-c", "/bin/sh"], options: options)
            return (pid, master)
        } catch {
            close(master)
            throw ConsoleError(description: "starting \(shell): \(error)")
        }
    }
}
