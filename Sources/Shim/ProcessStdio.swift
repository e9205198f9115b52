import AgentAPI
import FoundationEssentials
import Glibc
import Logging
import SwiftKataOS
import SwiftProtobuf
import Synchronization

/// Where containerd wants one process's stdio: FIFO paths (or `file://` URIs), empty when absent;
/// or, for `binary://` URIs, a logging binary the shim starts (`BinaryLogger`).
struct StdioPaths: Sendable, Equatable {
    var stdin: String
    var stdout: String
    var stderr: String
    var terminal: Bool
    /// Set when stdout is a `binary://` URI; stdout and stderr then keep the URIs as containerd sent them.
    var binaryLog: BinaryLogURI? = nil

    /// The stdio of a Create or Exec request. As in containerd's runc shim, a `binary://` stdout
    /// decides for both output streams (containerd's clients send the same URI as stderr); the
    /// binary must exist and be executable.
    static func parse(stdin: String, stdout: String, stderr: String, terminal: Bool) throws(ShimError) -> StdioPaths {
        if BinaryLogURI.isBinary(stdout) {
            let log = try BinaryLogURI(parsing: stdout)
            try log.validateExecutable()
            return StdioPaths(stdin: try resolve(stdin), stdout: stdout, stderr: stderr, terminal: terminal, binaryLog: log)
        }
        if BinaryLogURI.isBinary(stderr) {
            throw .invalidArgument("stderr \(stderr): a binary:// logger must be given as stdout too (it takes both streams)")
        }
        return StdioPaths(stdin: try resolve(stdin), stdout: try resolve(stdout), stderr: try resolve(stderr), terminal: terminal)
    }

    /// The path to open for a stdio URI: a plain path, `fifo://` or `file://`. (`binary://` loggers
    /// are not paths: `parse` handles them, for stdout and stderr.)
    static func resolve(_ uri: String) throws(ShimError) -> String {
        if uri.isEmpty || uri.hasPrefix("/") { return uri }
        if uri.hasPrefix("file://") { return String(uri.dropFirst("file://".count)) }
        if uri.hasPrefix("fifo://") { return String(uri.dropFirst("fifo://".count)) }
        if BinaryLogURI.isBinary(uri) { throw .invalidArgument("stdio \(uri): a binary:// logger can only take stdout and stderr") }
        throw .unimplemented("stdio \(uri): only FIFOs, file:// and binary:// are supported")
    }
}

/// Copies one guest process's stdio between containerd's FIFOs and the agent: output is pulled with
/// `ReadOutput` (long polls, 1 MiB at a time) and written to the FIFOs until the guest reports EOF;
/// stdin is read from its FIFO and written with `WriteStdin`, then closed with `CloseStdin`. With a
/// logging binary, the output goes to the write ends of its pipes instead of the FIFOs; once both
/// streams ended (and those ends are closed) the binary is stopped.
final class ProcessStdio: Sendable {
    let paths: StdioPaths
    private let agent: GuestAgent
    private let binaryLogger: BinaryLogger?
    private let containerID: String
    private let execID: String
    private let logger: Logger
    /// The pod's counters (output bytes copied), when it keeps them.
    private let statistics: PodStatistics?
    private let stdinClosed = Atomic<Bool>(false)
    private static let chunk = AgentProtocol.maxOutputChunk

    init(
        paths: StdioPaths, agent: GuestAgent, containerID: String, execID: String, logger: Logger, binaryLogger: BinaryLogger? = nil,
        statistics: PodStatistics? = nil
    ) {
        self.paths = paths
        self.statistics = statistics
        self.binaryLogger = binaryLogger
        self.agent = agent
        self.containerID = containerID
        self.execID = execID
        self.logger = logger
    }

    /// Where one output stream goes: a FIFO or file to open (none when empty), or a descriptor the
    /// copy owns (a logging binary's pipe; negative: nowhere).
    private enum OutputTarget: Sendable {
        case path(String)
        case descriptor(CInt)
    }

    /// Starts copying; the returned task ends when both output streams reached EOF (or the VM is
    /// gone), and a logging binary has been stopped.
    func start() -> Task<Void, Never> {
        if !paths.stdin.isEmpty {
            Task { await self.copyStdin() }
        }
        var stdoutTarget = OutputTarget.path(paths.stdout)
        var stderrTarget = OutputTarget.path(paths.stderr)
        if let binaryLogger {
            let outputs = binaryLogger.takeOutputs()
            stdoutTarget = .descriptor(outputs?.stdout ?? -1)
            stderrTarget = .descriptor(outputs?.stderr ?? -1)
            // With a terminal everything arrives as stdout: the logger's stderr ends at once.
            if paths.terminal, let outputs { close(outputs.stderr) }
        }
        let (binaryLogger, stdoutCopy, stderrCopy) = (binaryLogger, stdoutTarget, stderrTarget)
        return Task {
            async let stdout: Void = copyOutput(.stdout, to: stdoutCopy)
            async let stderr: Void = paths.terminal ? () : copyOutput(.stderr, to: stderrCopy)
            _ = await (stdout, stderr)
            // The write ends are closed: the logger reads EOF and has its time to finish.
            await binaryLogger?.stop()
        }
    }

    /// The process is deleted: a logging binary is stopped even if the output has not ended yet
    /// (containerd closes it on Delete too); the copy then drains into the broken pipe.
    func stopLogger() {
        guard let binaryLogger else { return }
        Task { await binaryLogger.stop() }
    }

    private func copyOutput(_ stream: Swiftkata_Agent_V1_OutputStream, to target: OutputTarget) async {
        var fd: CInt
        switch target {
        case .descriptor(let descriptor): fd = descriptor
        case .path(let path):
            fd = path.isEmpty ? -1 : await onBlockingThread { open(path, O_WRONLY | O_CLOEXEC | O_APPEND) }
            if !path.isEmpty && fd < 0 {
                logger.warning("cannot open output", metadata: ["path": "\(path)", "error": "\(String(cString: strerror(errno)))"])
            }
        }
        defer { if fd >= 0 { close(fd) } }
        while true {
            let response: Swiftkata_Agent_V1_ReadOutputResponse
            do {
                let request = Swiftkata_Agent_V1_ReadOutputRequest.with {
                    $0.containerID = containerID
                    $0.execID = execID
                    $0.stream = stream
                    $0.maxBytes = UInt32(Self.chunk)
                }
                response = try await agent.call("reading output") { agent in try await agent.readOutput(request) }
            } catch {
                // The VM or the process is gone; closing the FIFO (or pipe) ends the reader's copy.
                logger.debug("output copy ended", metadata: ["container": "\(containerID)", "exec": "\(execID)", "stream": "\(stream)", "error": "\(error)"])
                return
            }
            // The guest never gets to send more than asked for; a larger reply is cut, not trusted.
            let data = Array(response.data.prefix(Self.chunk))
            statistics?.addOutput(stream, bytes: data.count)
            if fd >= 0 && !data.isEmpty {
                let target = fd
                if !(await onBlockingThread { (try? writeAll(fd: target, data)) != nil }) {
                    logger.debug(
                        "output reader went away",
                        metadata: [
                            "container": "\(containerID)", "exec": "\(execID)", "stream": "\(stream)",
                            "error": "\(String(cString: strerror(errno)))", "bytes": "\(data.count)",
                        ])
                    close(fd)
                    fd = -1  // the reader went away (EPIPE; SIGPIPE is ignored): keep draining so the guest process never blocks
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
            let data = await onBlockingThread { readChunk(fd: fd, limit: 65536) }
            if data.isEmpty { break }
            var offset = 0
            while offset < data.count {
                let request = Swiftkata_Agent_V1_WriteStdinRequest.with {
                    $0.containerID = containerID
                    $0.execID = execID
                    $0.data = Data(data[offset...])
                }
                guard let written = try? await agent.call("writing stdin", { agent in try await agent.writeStdin(request).written }),
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
        let request = Swiftkata_Agent_V1_CloseStdinRequest.with {
            $0.containerID = containerID
            $0.execID = execID
        }
        _ = try? await agent.call("closing stdin") { agent in try await agent.closeStdin(request) }
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
