import CContainerSpawn
import CLinuxSys
import Glibc
import GuestAgentCore
import NIOCore
import NIOPosix

/// The stdio of one guest process as the host sees it: stdin to write, stdout/stderr to read,
/// and for a terminal the pty master to resize.
final class ProcessIO: Sendable {
    let stdout: OutputPipe
    let stderr: OutputPipe?
    private let stdinChannel: (any Channel)?
    private let ptyMaster: CInt?

    /// The child's ends: dup'd onto 0, 1, 2 by the spawner (or, for a terminal, the socket on which
    /// the child sends back the master of the pty it opens in its own devpts). Closed once spawned.
    struct ChildEnds: Sendable {
        var stdin: CInt
        var stdout: CInt
        var stderr: CInt
        var consoleSocket: CInt = -1
        func close() {
            for fd in Set([stdin, stdout, stderr, consoleSocket]) where fd >= 0 { Glibc.close(fd) }
        }
    }

    /// Stdio being set up: ready now (pipes), or once the child has sent its pty master (terminal).
    enum Pending: Sendable {
        case ready(ProcessIO)
        case console(socket: CInt)

        /// Prepares stdio for a process about to be spawned.
        static func make(terminal: Bool, stdin: Bool) async throws -> (Pending, ChildEnds) {
            if terminal {
                var fds: [CInt] = [0, 0]
                guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
                    throw SetupError(description: "console socketpair: \(String(cString: strerror(errno)))")
                }
                return (.console(socket: fds[0]), ChildEnds(stdin: -1, stdout: -1, stderr: -1, consoleSocket: fds[1]))
            }
            let (io, ends) = try await ProcessIO.pipes(withStdin: stdin)
            return (.ready(io), ends)
        }

        /// After a successful spawn: the process's stdio.
        func complete() async throws -> ProcessIO {
            switch self {
            case .ready(let io):
                return io
            case .console(let socket):
                defer { Glibc.close(socket) }
                var master: CInt = -1
                var message = [CChar](repeating: 0, count: 256)
                guard sk_receive_console(socket, &master, &message, message.count) == 0 else {
                    throw SetupError(description: String(cMessage: message))
                }
                return try await ProcessIO.terminal(master: master)
            }
        }

        /// The spawn failed: release what was prepared.
        func cancel() async {
            switch self {
            case .ready(let io): await io.close()
            case .console(let socket): Glibc.close(socket)
            }
        }
    }

    private init(stdout: OutputPipe, stderr: OutputPipe?, stdinChannel: (any Channel)?, ptyMaster: CInt?) {
        self.stdout = stdout
        self.stderr = stderr
        self.stdinChannel = stdinChannel
        self.ptyMaster = ptyMaster
    }

    struct SetupError: Error, CustomStringConvertible {
        var description: String
    }

    /// Pipes for stdin (when the host sends it), stdout and stderr.
    static func pipes(withStdin: Bool) async throws -> (ProcessIO, ChildEnds) {
        let out = try makePipe(), err = try makePipe()
        // Output pipes of 1 MiB instead of 64 KiB: a chatty process and the agent wake each other a
        // sixteenth as often (under TCG each wake-up is costly). Best effort: the default still works.
        for fd in [out.read, err.read] { _ = fcntl(fd, Self.F_SETPIPE_SZ, Self.outputPipeBytes) }
        var stdinChannel: (any Channel)?
        var childStdin: CInt = -1
        if withStdin {
            let input = try makePipe()
            childStdin = input.read
            stdinChannel = try await NIOPipeBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .takingOwnershipOfDescriptor(output: input.write).get()
        }
        let io = ProcessIO(
            stdout: try await OutputPipe.reading(fd: out.read), stderr: try await OutputPipe.reading(fd: err.read),
            stdinChannel: stdinChannel, ptyMaster: nil)
        return (io, ChildEnds(stdin: childStdin, stdout: out.write, stderr: err.write))
    }

    /// A pseudo-terminal whose master the child sent back (the slave is the child's 0, 1 and 2, in the
    /// container's own devpts); all output arrives on stdout. Takes ownership of `master`.
    static func terminal(master: CInt) async throws -> ProcessIO {
        let readSide = fcntl(master, F_DUPFD_CLOEXEC, 3)
        let writeSide = fcntl(master, F_DUPFD_CLOEXEC, 3)
        guard readSide >= 0, writeSide >= 0 else {
            let cause = errno
            for fd in [readSide, writeSide, master] where fd >= 0 { Glibc.close(fd) }
            throw SetupError(description: "duplicating the pty master: \(String(cString: strerror(cause)))")
        }
        let stdinChannel = try await NIOPipeBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .takingOwnershipOfDescriptor(output: writeSide).get()
        return ProcessIO(
            stdout: try await OutputPipe.reading(fd: readSide), stderr: nil,
            stdinChannel: stdinChannel, ptyMaster: master)
    }

    /// Writes to the process's stdin; returns the bytes written.
    func write(_ bytes: ByteBuffer) async throws -> Int {
        guard let stdinChannel else { throw SetupError(description: "the process has no stdin") }
        try await stdinChannel.writeAndFlush(bytes)
        return bytes.readableBytes
    }

    func closeStdin() async {
        try? await stdinChannel?.close()
    }

    func resize(rows: UInt16, columns: UInt16) throws {
        guard let ptyMaster else { return }  // a no-op without a terminal, as for runc
        var size = winsize(ws_row: rows, ws_col: columns, ws_xpixel: 0, ws_ypixel: 0)
        guard ioctl(ptyMaster, UInt(TIOCSWINSZ), &size) == 0 else {
            throw SetupError(description: "resizing the terminal: \(String(cString: strerror(errno)))")
        }
    }

    func close() async {
        try? await stdinChannel?.close()
        stdout.close()
        stderr?.close()
        if let ptyMaster { Glibc.close(ptyMaster) }
    }

    /// Linux's F_SETPIPE_SZ (glibc exposes it only with _GNU_SOURCE).
    static let F_SETPIPE_SZ: CInt = 1031
    static let outputPipeBytes: CInt = 1 << 20

    private static func makePipe() throws -> (read: CInt, write: CInt) {
        var fds: [CInt] = [0, 0]
        guard linux_pipe_cloexec(&fds) == 0 else {
            throw SetupError(description: "pipe: \(String(cString: strerror(errno)))")
        }
        return (fds[0], fds[1])
    }
}
