import CGuestSys
import Glibc
import NIOCore
import NIOPosix

/// The stdio of one guest process as the host sees it: stdin to write, stdout/stderr to read,
/// and for a terminal the pty master to resize.
final class ProcessIO: Sendable {
    let stdout: OutputPipe
    let stderr: OutputPipe?
    private let stdinChannel: (any Channel)?
    private let ptyMaster: CInt?

    /// The child's ends: dup'd onto 0, 1, 2 by the spawner, closed here once it has started.
    struct ChildEnds {
        var stdin: CInt
        var stdout: CInt
        var stderr: CInt
        func close() {
            for fd in Set([stdin, stdout, stderr]) where fd >= 0 { Glibc.close(fd) }
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

    /// A pseudo-terminal: the child gets the slave on 0, 1 and 2; all output arrives on stdout.
    static func terminal(rows: UInt16 = 24, columns: UInt16 = 80) async throws -> (ProcessIO, ChildEnds) {
        var master: CInt = -1, slave: CInt = -1
        guard guest_open_pty(&master, &slave) == 0 else {
            throw SetupError(description: "allocating a pty: \(String(cString: strerror(errno)))")
        }
        var size = winsize(ws_row: rows, ws_col: columns, ws_xpixel: 0, ws_ypixel: 0)
        _ = ioctl(master, UInt(TIOCSWINSZ), &size)
        let readSide = fcntl(master, F_DUPFD_CLOEXEC, 3)
        let writeSide = fcntl(master, F_DUPFD_CLOEXEC, 3)
        let stdinChannel = try await NIOPipeBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .takingOwnershipOfDescriptor(output: writeSide).get()
        let io = ProcessIO(stdout: try await OutputPipe.reading(fd: readSide), stderr: nil,
                           stdinChannel: stdinChannel, ptyMaster: master)
        return (io, ChildEnds(stdin: slave, stdout: slave, stderr: slave))
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

    private static func makePipe() throws -> (read: CInt, write: CInt) {
        var fds: [CInt] = [0, 0]
        guard guest_pipe_cloexec(&fds) == 0 else {
            throw SetupError(description: "pipe: \(String(cString: strerror(errno)))")
        }
        return (fds[0], fds[1])
    }
}
