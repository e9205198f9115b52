import CLinuxSys
import Glibc
import Hypervisor
import Logging
import SwiftKataOS
import Synchronization

/// A logging binary started for one process's output, as containerd's runc shim does for
/// `binary://` URIs (`NewBinaryIO` in containerd's `pkg/process/io.go`; the binary side is
/// containerd's `runtime/v2/logging` package):
///
/// - Three O_CLOEXEC pipes. The binary gets the read end of the stdout pipe as fd 3, the read end of
///   the stderr pipe as fd 4 and the write end of a "ready" pipe as fd 5; fds 0-2 are /dev/null and
///   nothing else is inherited. Its environment is exactly `CONTAINER_ID` (the container id for an
///   init process, the exec id for an exec) and `CONTAINER_NAMESPACE`; argv is the path, then the
///   URI's arguments. Signal mask and dispositions are reset (the daemon ignores SIGPIPE and SIGTERM).
/// - The shim then waits for readiness: a byte or EOF on the ready pipe (the logging library's
///   `ready()` closes fd 5). containerd waits without a bound; here `readinessTimeout` (30 s) bounds
///   it, and a binary that has exited by then (checked for `earlyExitWindow` after EOF) counts as a
///   failure. Either way the binary is killed and reaped, the pipes closed, and the error names it.
///   (So a logger that signals and exits at once, e.g. containerd's test logger `/bin/echo`, is
///   refused here where containerd would accept it and lose the output.)
/// - The stdout and stderr write ends are taken over by `ProcessStdio`, which copies the guest
///   process's output into them and closes them at EOF (with a terminal, stderr's is closed at once).
/// - `stop()`: the binary has `exitGrace` (2 s) to exit by itself after its input ended, then gets
///   SIGTERM (the logging library cancels its context) and `termGrace` (10 s) more, then SIGKILL; it
///   is always reaped. 12 s in all, containerd's `binaryIOProcTermTimeout`. containerd closes the
///   pipes and sends SIGTERM at once, on the process's Delete; here the stop follows the end of the
///   output (and Delete starts it too if the output has not ended), so a logger still draining its
///   pipe is not interrupted.
final class BinaryLogger: Sendable {
    static let readinessTimeout: Duration = .seconds(30)
    static let earlyExitWindow: Duration = .milliseconds(50)
    static let exitGrace: Duration = .seconds(2)
    static let termGrace: Duration = .seconds(10)

    let uri: BinaryLogURI
    let pid: pid_t
    private let log: Logger
    private let state: Mutex<State>

    private struct State {
        /// Set once reaped: the shell-style status (128 + signal for a signal death).
        var exitStatus: Int32?
        /// The write ends, until `ProcessStdio` takes them (or a failure closes them).
        var outputs: (stdout: CInt, stderr: CInt)?
        var stopping: Task<Void, Never>?
    }

    /// Loggers not yet reaped, for the daemon's exit.
    private static let live = Mutex<[ObjectIdentifier: BinaryLogger]>([:])

    private init(uri: BinaryLogURI, pid: pid_t, outputs: (CInt, CInt), log: Logger) {
        self.uri = uri
        self.pid = pid
        self.log = log
        state = Mutex(State(outputs: outputs))
    }

    deinit {
        if let outputs = state.withLock({ $0.outputs }) {
            close(outputs.stdout)
            close(outputs.stderr)
        }
    }

    /// Starts the binary and waits for it to be ready. `containerID` is what the binary sees as
    /// `CONTAINER_ID` (an exec's id for an exec).
    static func start(
        _ uri: BinaryLogURI, containerID: String, namespace: String, logger: Logger,
        readinessTimeout: Duration = readinessTimeout
    ) async throws(ShimError) -> BinaryLogger {
        var pipes: [[CInt]] = []
        for name in ["stdout", "stderr", "ready"] {
            var fds: [CInt] = [-1, -1]
            guard linux_pipe_cloexec(&fds) == 0 else {
                let reason = String(cString: strerror(errno))
                pipes.joined().forEach { close($0) }
                throw .internalError("logging binary \(uri.path): creating the \(name) pipe: \(reason)")
            }
            pipes.append(fds)
        }
        let (stdoutPipe, stderrPipe, readyPipe) = (pipes[0], pipes[1], pipes[2])
        let environment = ["CONTAINER_ID=\(containerID)", "CONTAINER_NAMESPACE=\(namespace)"]
        let spawned = spawn(uri, environment: environment, childDescriptors: [stdoutPipe[0], stderrPipe[0], readyPipe[1]])
        // The binary has its ends now (or failed to start): ours go.
        [stdoutPipe[0], stderrPipe[0], readyPipe[1]].forEach { close($0) }
        let pid: pid_t
        switch spawned {
        case .failure(let failure):
            [stdoutPipe[1], stderrPipe[1], readyPipe[0]].forEach { close($0) }
            throw failure
        case .success(let started): pid = started
        }
        let instance = BinaryLogger(uri: uri, pid: pid, outputs: (stdoutPipe[1], stderrPipe[1]), log: logger)
        live.withLock { $0[ObjectIdentifier(instance)] = instance }

        let readyFD = readyPipe[0]
        let readiness = await onBlockingThread { awaitReadiness(fd: readyFD, timeout: readinessTimeout) }
        close(readyFD)
        var failure: ShimError?
        switch readiness {
        case .timedOut:
            failure = .failedPrecondition("logging binary \(uri.path) did not signal readiness (closing fd 5) within \(readinessTimeout); it was killed")
        case .failed(let code):
            failure = .internalError("logging binary \(uri.path): reading its ready pipe: \(String(cString: strerror(code)))")
        case .ready:
            if await instance.awaitExit(until: ContinuousClock.now + earlyExitWindow), let status = instance.exitStatus {
                failure = .failedPrecondition("logging binary \(uri.path) exited (status \(status)) before taking the process's output")
            }
        }
        if let failure {
            await instance.abort()
            throw failure
        }
        logger.debug("logging binary started", metadata: ["binary": "\(uri.path)", "pid": "\(pid)", "container": "\(containerID)"])
        return instance
    }

    /// The exit status once reaped.
    var exitStatus: Int32? { state.withLock { $0.exitStatus } }

    /// Hands the stdout and stderr write ends to their copier, once; the taker closes them.
    func takeOutputs() -> (stdout: CInt, stderr: CInt)? {
        state.withLock { state in
            defer { state.outputs = nil }
            return state.outputs
        }
    }

    /// Ends the binary (see the type's comment): idempotent, every caller returns once it is reaped.
    /// The grace periods are the first caller's.
    func stop(exitGrace: Duration = exitGrace, termGrace: Duration = termGrace) async {
        let task = state.withLock { state -> Task<Void, Never> in
            if let stopping = state.stopping { return stopping }
            let stopping = Task { await self.runStop(exitGrace: exitGrace, termGrace: termGrace) }
            state.stopping = stopping
            return stopping
        }
        await task.value
    }

    /// The process could not be set up: closes the write ends if nobody took them, kills and reaps.
    func abort() async {
        closeUntakenOutputs()
        await stop(exitGrace: .zero, termGrace: .zero)
    }

    /// Ends every logger still running (the daemon is exiting; their output has ended or is about
    /// to): `grace` to exit by themselves, then SIGTERM, a second, SIGKILL; all reaped.
    static func stopAll(grace: Duration) async {
        let loggers = live.withLock { Array($0.values) }
        guard !loggers.isEmpty else { return }
        loggers.forEach { $0.closeUntakenOutputs() }
        var deadline = ContinuousClock.now + grace
        for logger in loggers { _ = await logger.awaitExit(until: deadline) }
        loggers.forEach { $0.signal(SIGTERM) }
        deadline = ContinuousClock.now + .seconds(1)
        for logger in loggers { _ = await logger.awaitExit(until: deadline) }
        for logger in loggers {
            logger.signal(SIGKILL)
            _ = await logger.awaitExit(until: nil)
        }
    }

    private func runStop(exitGrace: Duration, termGrace: Duration) async {
        let path = uri.path
        if await awaitExit(until: ContinuousClock.now + exitGrace) { return logExit() }
        if exitGrace > .zero {
            log.warning("logging binary still running after its input ended; sending SIGTERM", metadata: ["binary": "\(path)", "pid": "\(pid)"])
        }
        signal(SIGTERM)
        if await awaitExit(until: ContinuousClock.now + termGrace) { return logExit() }
        if termGrace > .zero {
            log.warning("logging binary ignored SIGTERM; killing it", metadata: ["binary": "\(path)", "pid": "\(pid)"])
        }
        signal(SIGKILL)
        _ = await awaitExit(until: nil)
        logExit()
    }

    private func logExit() {
        log.debug("logging binary exited", metadata: ["binary": "\(uri.path)", "pid": "\(pid)", "status": "\(exitStatus ?? -1)"])
    }

    private func closeUntakenOutputs() {
        if let outputs = takeOutputs() {
            close(outputs.stdout)
            close(outputs.stderr)
        }
    }

    /// Signals the binary unless it has been reaped (its pid cannot be reused before that).
    private func signal(_ number: CInt) {
        state.withLock { state in
            if state.exitStatus == nil { _ = kill(pid, number) }
        }
    }

    /// Polls for the exit until `deadline` (nil: without a bound); true once reaped.
    private func awaitExit(until deadline: ContinuousClock.Instant?) async -> Bool {
        var interval = Duration.milliseconds(2)
        while true {
            if reap() { return true }
            let now = ContinuousClock.now
            if let deadline, now >= deadline { return false }
            let nap = deadline.map { min(interval, $0 - now) } ?? interval
            try? await Task.sleep(for: nap)
            interval = min(interval * 2, .milliseconds(50))
        }
    }

    /// `waitpid(WNOHANG)`; true when the binary has been reaped (now or before).
    private func reap() -> Bool {
        let reaped = state.withLock { state -> Bool in
            if state.exitStatus != nil { return true }
            var status: Int32 = 0
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid {
                state.exitStatus = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
                return true
            }
            if result < 0 && errno == ECHILD {
                state.exitStatus = -1  // not ours to reap any more: gone
                return true
            }
            return false
        }
        if reaped { _ = Self.live.withLock { $0.removeValue(forKey: ObjectIdentifier(self)) } }
        return reaped
    }

    enum Readiness: Equatable { case ready, timedOut, failed(CInt) }

    /// Blocks until a byte or EOF arrives on `fd`, or `timeout` passes.
    static func awaitReadiness(fd: CInt, timeout: Duration) -> Readiness {
        let deadline = ContinuousClock.now + timeout
        while true {
            let left = deadline - ContinuousClock.now
            guard left > .zero else { return .timedOut }
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&entry, 1, Int32(min(left / .milliseconds(1), 60_000)) + 1)
            if ready < 0 && errno == EINTR { continue }
            guard ready >= 0 else { return .failed(errno) }
            guard ready > 0 else { continue }
            var byte: UInt8 = 0
            let count = read(fd, &byte, 1)
            if count < 0 && (errno == EINTR || errno == EAGAIN) { continue }
            return count < 0 ? .failed(errno) : .ready
        }
    }

    /// posix_spawn with containerd's contract: `childDescriptors` become fds 3, 4, 5, fds 0-2 are
    /// /dev/null, every other fd is closed.
    private static func spawn(_ uri: BinaryLogURI, environment: [String], childDescriptors: [CInt]) -> Result<pid_t, ShimError> {
        // Moved above 5 first, so that no dup2 onto 3, 4 or 5 overwrites a source still to be copied.
        var high: [CInt] = []
        defer { high.forEach { close($0) } }
        for fd in childDescriptors {
            let copy = fcntl(fd, F_DUPFD_CLOEXEC, 6)
            guard copy >= 0 else { return .failure(.internalError("logging binary \(uri.path): \(String(cString: strerror(errno)))")) }
            high.append(copy)
        }
        var options = ProcessSpawn.Options()
        options.environment = environment
        // The daemon ignores SIGPIPE and handles SIGTERM itself: the logger starts with neither.
        options.defaultSignalActions = true
        var actions: [ProcessSpawn.FileAction] = [
            .open(0, path: "/dev/null", flags: O_RDONLY), .open(1, path: "/dev/null", flags: O_WRONLY),
            .open(2, path: "/dev/null", flags: O_WRONLY),
        ]
        for (index, fd) in high.enumerated() { actions.append(.duplicate(fd, to: CInt(3 + index))) }
        actions.append(.closeFrom(6))
        options.fileActions = actions
        do { return .success(try ProcessSpawn.spawn(uri.path, argv: [uri.path] + uri.arguments, options: options)) } catch {
            let reason = "starting logging binary \(uri.path): \(error.errno)"
            switch error.errno.rawValue {
            case ENOENT, EACCES, ENOEXEC, ENOTDIR, EISDIR, ELOOP, ENAMETOOLONG, EPERM: return .failure(.invalidArgument(reason))
            default: return .failure(.internalError(reason))
            }
        }
    }
}
