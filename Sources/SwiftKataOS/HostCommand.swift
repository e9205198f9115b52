import CLinuxSys
import Glibc

/// A host program run to completion: stdin /dev/null, stdout and stderr captured separately (each
/// bounded to 1 MiB), C locale, a fixed PATH. Used for the few host tools swiftkata drives
/// (iproute2's `ip` and `tc`, QEMU's probes).
public struct HostCommand: Sendable, Equatable {
    public var status: Int32
    public var standardOutput: String
    public var standardError: String

    /// Why a command produced no result.
    public enum Failure: Error, Sendable, Equatable, CustomStringConvertible {
        case cannotStart(executable: String, reason: String)
        case timedOut(executable: String, milliseconds: Int)

        public var description: String {
            switch self {
            case .cannotStart(let executable, let reason): "cannot run \(executable): \(reason)"
            case .timedOut(let executable, let milliseconds): "\(executable) did not finish within \(milliseconds) ms and was killed"
            }
        }
    }

    static let maxCapturedBytes = 1 << 20
    static let environment = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"]

    /// Most a command's standard input may hold: it is written whole into the pipe before the
    /// command runs (a pipe holds 64 KiB), so no writer thread is needed.
    public static let maxStandardInput = 60 << 10

    /// Runs `executable` (an absolute path, or a name looked up in the fixed PATH) with `arguments`,
    /// and `standardInput` (at most `maxStandardInput` bytes) on its stdin, else /dev/null.
    /// A signal death reads as status 128 + signal, as in a shell.
    public static func run(
        _ executable: String, _ arguments: [String], standardInput: [UInt8]? = nil, timeoutMilliseconds: Int = 5_000
    ) throws(Failure) -> HostCommand {
        var inPipe: [Int32] = [-1, -1]
        if let standardInput {
            guard standardInput.count <= maxStandardInput else {
                throw .cannotStart(executable: executable, reason: "standard input of \(standardInput.count) bytes, at most \(maxStandardInput)")
            }
            guard linux_pipe_cloexec(&inPipe) == 0 else { throw .cannotStart(executable: executable, reason: String(cString: strerror(errno))) }
            do throws(SystemError) {
                try writeAll(fd: inPipe[1], standardInput)
                close(inPipe[1])
            } catch {
                close(inPipe[0])
                close(inPipe[1])
                throw .cannotStart(executable: executable, reason: "writing its standard input: \(error)")
            }
        }
        defer { if inPipe[0] >= 0 { close(inPipe[0]) } }
        var outPipe: [Int32] = [-1, -1]
        var errPipe: [Int32] = [-1, -1]
        guard linux_pipe_cloexec(&outPipe) == 0 else { throw .cannotStart(executable: executable, reason: String(cString: strerror(errno))) }
        guard linux_pipe_cloexec(&errPipe) == 0 else {
            let reason = String(cString: strerror(errno))
            close(outPipe[0]); close(outPipe[1])
            throw .cannotStart(executable: executable, reason: reason)
        }
        let pid: pid_t
        do throws(SystemError) {
            var options = ProcessSpawn.Options()
            options.environment = environment
            options.fileActions = [
                inPipe[0] >= 0 ? .duplicate(inPipe[0], to: 0) : .open(0, path: "/dev/null", flags: O_RDONLY),
                .duplicate(outPipe[1], to: 1), .duplicate(errPipe[1], to: 2),
            ]
            pid = try ProcessSpawn.spawn(executable, argv: [executable] + arguments, options: options)
        } catch {
            close(outPipe[0]); close(outPipe[1]); close(errPipe[0]); close(errPipe[1])
            throw .cannotStart(executable: executable, reason: error.errno.description)
        }
        close(outPipe[1])
        close(errPipe[1])
        defer { close(outPipe[0]); close(errPipe[0]) }

        var captured: [[UInt8]] = [[], []]
        var open = [outPipe[0], errPipe[0]]
        var chunk = [UInt8](repeating: 0, count: 16384)
        let deadline = ContinuousClock.now + .milliseconds(timeoutMilliseconds)
        var timedOut = false
        while open.contains(where: { $0 >= 0 }) {
            let left = deadline - ContinuousClock.now
            guard left > .zero else { timedOut = true; break }
            var entries = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            let ready = poll(&entries, nfds_t(entries.count), Int32(left / .milliseconds(1)) + 1)
            if ready < 0 && errno == EINTR { continue }
            guard ready >= 0 else { break }
            for index in entries.indices where entries[index].fd >= 0 && entries[index].revents != 0 {
                let count = read(entries[index].fd, &chunk, chunk.count)
                if count < 0 && errno == EINTR { continue }
                if count <= 0 { open[index] = -1; continue }
                if captured[index].count < maxCapturedBytes { captured[index].append(contentsOf: chunk[0..<count]) }
            }
        }
        if timedOut { kill(pid, SIGKILL) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        if timedOut { throw .timedOut(executable: executable, milliseconds: timeoutMilliseconds) }
        let code = ProcessSpawn.shellStatus(status)
        return HostCommand(
            status: code, standardOutput: String(decoding: captured[0], as: UTF8.self),
            standardError: String(decoding: captured[1], as: UTF8.self))
    }
}
