import AgentAPI
import Glibc
import Logging
import Synchronization

/// Where containerd wants one process's stdio: FIFO paths (or `file://` URIs), empty when absent.
struct StdioPaths: Sendable, Equatable {
    var stdin: String
    var stdout: String
    var stderr: String
    var terminal: Bool

    /// The path to open for a stdio URI: a plain path or `file://`; `binary://` loggers are not supported.
    static func resolve(_ uri: String) throws(ShimError) -> String {
        if uri.isEmpty || uri.hasPrefix("/") { return uri }
        if uri.hasPrefix("file://") { return String(uri.dropFirst("file://".count)) }
        if uri.hasPrefix("fifo://") { return String(uri.dropFirst("fifo://".count)) }
        throw .unimplemented("stdio \(uri): only FIFOs and file:// are supported")
    }
}

/// Copies one guest process's stdio between containerd's FIFOs and the agent: output is pulled with
/// `ReadOutput` (long polls, 1 MiB at a time) and written to the FIFOs until the guest reports EOF;
/// stdin is read from its FIFO and written with `WriteStdin`, then closed with `CloseStdin`.
final class ProcessStdio: Sendable {
    let paths: StdioPaths
    private let agent: AgentSession
    private let containerID: String
    private let execID: String
    private let logger: Logger
    private let stdinClosed = Atomic<Bool>(false)
    private static let chunk = AgentProtocol.maxOutputChunk

    init(paths: StdioPaths, agent: AgentSession, containerID: String, execID: String, logger: Logger) {
        self.paths = paths
        self.agent = agent
        self.containerID = containerID
        self.execID = execID
        self.logger = logger
    }

    /// Starts copying; the returned task ends when both output streams reached EOF (or the VM is gone).
    func start() -> Task<Void, Never> {
        if !paths.stdin.isEmpty {
            Task { await self.copyStdin() }
        }
        return Task {
            async let stdout: Void = copyOutput(.stdout, to: paths.stdout)
            async let stderr: Void = paths.terminal ? () : copyOutput(.stderr, to: paths.stderr)
            _ = await (stdout, stderr)
        }
    }

    private func copyOutput(_ stream: Swiftkata_Agent_V1_OutputStream, to path: String) async {
        var fd: CInt = path.isEmpty ? -1 : await onBlockingThread { open(path, O_WRONLY | O_CLOEXEC | O_APPEND) }
        if !path.isEmpty && fd < 0 {
            logger.warning("cannot open output", metadata: ["path": "\(path)", "error": "\(String(cString: strerror(errno)))"])
        }
        defer { if fd >= 0 { close(fd) } }
        while true {
            let response: Swiftkata_Agent_V1_ReadOutputResponse
            do {
                response = try await agent.readOutput(containerID: containerID, execID: execID, stream: stream, maxBytes: Self.chunk)
            } catch {
                return  // the VM or the process is gone; closing the FIFO ends containerd's copy
            }
            // The guest never gets to send more than asked for; a larger reply is cut, not trusted.
            let data = Array(response.data.prefix(Self.chunk))
            if fd >= 0 && !data.isEmpty {
                let target = fd
                if !(await onBlockingThread { BlockingIO.writeAll(target, data) }) {
                    close(fd)
                    fd = -1  // the reader went away: keep draining so the guest process never blocks
                }
            }
            if response.eof { return }
        }
    }

    private func copyStdin() async {
        let path = paths.stdin
        // Blocks until containerd opens the write side; `release()` unblocks it if that never happens.
        let fd = await onBlockingThread { open(path, O_RDONLY | O_CLOEXEC) }
        guard fd >= 0 else { return await closeGuestStdin() }
        defer { close(fd) }
        while !stdinClosed.load(ordering: .relaxed) {
            let data = await onBlockingThread { BlockingIO.readChunk(fd, limit: 65536) }
            if data.isEmpty { break }
            var offset = 0
            while offset < data.count {
                guard let written = try? await agent.writeStdin(containerID: containerID, execID: execID, data: Array(data[offset...])),
                      written > 0
                else { return await closeGuestStdin() }
                offset += min(Int(written), data.count - offset)
            }
        }
        await closeGuestStdin()
    }

    /// containerd's CloseIO: the guest process sees EOF on stdin.
    func closeGuestStdin() async {
        guard !stdinClosed.exchange(true, ordering: .relaxed) else { return }
        try? await agent.closeStdin(containerID: containerID, execID: execID)
        releaseStdinOpen()
    }

    /// Unblocks copies still waiting for a peer to open a FIFO (the process is gone).
    func release() {
        releaseStdinOpen()
    }

    private func releaseStdinOpen() {
        guard !paths.stdin.isEmpty else { return }
        let fd = open(paths.stdin, O_WRONLY | O_NONBLOCK | O_CLOEXEC)
        if fd >= 0 { close(fd) }
    }
}
