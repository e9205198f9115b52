import Foundation
import Logging
import Testing

@testable import Shim

/// `binary://` log URIs: parsing as containerd's runc shim does, validation, and the logging
/// binary's contract (fds 3/4/5, environment, readiness, stop) with real processes.
@Suite struct BinaryLogURITests {
    @Test(arguments: [
        ("binary:///usr/bin/logger", "/usr/bin/logger", [String]()),
        ("binary:///usr/bin/logger?arg=value", "/usr/bin/logger", ["arg", "value"]),
        // containerd's own test URI: a parameter without a value still passes an empty argument.
        ("binary:///bin/echo?test", "/bin/echo", ["test", ""]),
        // nerdctl's URI for `run -d`.
        (
            "binary:///usr/local/bin/nerdctl?_NERDCTL_INTERNAL_LOGGING=%2Fvar%2Flib%2Fnerdctl%2F1935db59",
            "/usr/local/bin/nerdctl", ["_NERDCTL_INTERNAL_LOGGING", "/var/lib/nerdctl/1935db59"]
        ),
        // Scheme in any case, %-escapes, '+' as space in the query only, first value only, ';' dropped, fragment ignored.
        (
            "BINARY:///opt/my%20logger+x?a+b=c%26d&a%20b=second&e&;bad=1&f=1=2#fragment",
            "/opt/my logger+x", ["a b", "c&d", "e", "", "f", "1=2"]
        ),
        ("binary:/usr/bin/logger?k=v", "/usr/bin/logger", ["k", "v"]),
    ])
    func parses(uri: String, path: String, arguments: [String]) throws {
        let parsed = try BinaryLogURI(parsing: uri)
        #expect(parsed.path == path)
        #expect(parsed.arguments == arguments)
    }

    @Test(arguments: [
        ("binary://", "no logging binary path"),
        ("binary:", "no logging binary path"),
        ("binary:?a=b", "no logging binary path"),
        ("binary:relative/logger", "is relative"),
        ("binary://usr/bin/logger", "\"usr\" reads as a host"),
        ("binary:///bad%zzpath", "malformed %-escape"),
        ("binary:///bad%00path", "NUL byte"),
        ("binary:///usr/bin/logger?a=x%00y", "query parameter a contains a NUL byte"),
    ])
    func badURIs(uri: String, message: String) {
        #expect { try BinaryLogURI(parsing: uri) } throws: { error in
            guard case .invalidArgument(let detail) = error as? ShimError else { return false }
            return detail.contains(message)
        }
    }

    @Test(arguments: [
        ("/nonexistent/logger", "No such file or directory"),
        ("/etc/passwd", "is not executable"),
        ("/tmp", "is not a regular file"),
    ])
    func unusableBinaries(path: String, message: String) {
        #expect { try BinaryLogURI(path: path, arguments: []).validateExecutable() } throws: { error in
            guard case .invalidArgument(let detail) = error as? ShimError else { return false }
            return detail.contains(path) && detail.contains(message)
        }
        #expect { try StdioPaths.parse(stdin: "", stdout: "binary://\(path)", stderr: "binary://\(path)", terminal: false) } throws: {
            if case .invalidArgument = $0 as? ShimError { true } else { false }
        }
    }

    @Test func stdioWithALogger() throws {
        let uri = "binary:///bin/sh?x=y"
        let stdio = try StdioPaths.parse(stdin: "", stdout: uri, stderr: uri, terminal: false)
        #expect(stdio.binaryLog == BinaryLogURI(path: "/bin/sh", arguments: ["x", "y"]))
        #expect(stdio.stdout == uri && stdio.stderr == uri)  // State reports the URIs as sent

        let fifos = try StdioPaths.parse(stdin: "/run/in", stdout: "file:///run/out", stderr: "/run/err", terminal: false)
        #expect(fifos == StdioPaths(stdin: "/run/in", stdout: "/run/out", stderr: "/run/err", terminal: false))
        #expect(fifos.binaryLog == nil)

        #expect { try StdioPaths.parse(stdin: "", stdout: "/run/out", stderr: uri, terminal: false) } throws: {
            if case .invalidArgument = $0 as? ShimError { true } else { false }
        }
        #expect { try StdioPaths.parse(stdin: uri, stdout: "", stderr: "", terminal: false) } throws: {
            if case .invalidArgument = $0 as? ShimError { true } else { false }
        }
    }
}

/// Real logging binaries (`/bin/sh -c <script>`, the script passed in the URI's query).
@Suite final class BinaryLoggerProcessTests {
    let directory: String
    let logger = Logger(label: "test.binary-logger")

    init() throws {
        var template = Array("/tmp/swiftkata-binlog-test-XXXXXX".utf8CString)
        directory = String(cString: try #require(mkdtemp(&template)))
    }

    deinit {
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// `binary:///bin/sh?-c=<script>&<extra>`: the shell gets `-c <script>` (and the extra pairs as $0, $1, …).
    static func shellURI(_ script: String, extra: String = "") -> BinaryLogURI {
        let uri = "binary:///bin/sh?-c=\(percentEncode(script))" + (extra.isEmpty ? "" : "&\(extra)")
        return try! BinaryLogURI(parsing: uri)
    }

    static func percentEncode(_ text: String) -> String {
        text.utf8.map { byte in
            let unreserved = (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a) || "-_.~".utf8.contains(byte)
            return unreserved ? String(UnicodeScalar(byte)) : String(format: "%%%02X", byte)
        }.joined()
    }

    func read(_ name: String) -> String {
        (try? String(contentsOfFile: "\(directory)/\(name)", encoding: .utf8)) ?? "<missing \(name)>"
    }

    /// What this process's fds point at (`pipe:[inode]` and so on).
    static func ownDescriptorTargets() -> Set<String> {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return Set(entries.compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\($0)") })
    }

    static func write(_ fd: CInt, _ text: String) {
        _ = Array(text.utf8).withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
    }

    @Test func containerdsContract() async throws {
        signal(SIGPIPE, SIG_IGN)  // as in the shim daemon: the binary must not inherit it
        let d = directory
        let script = """
            while read -r key value; do case $key in SigBlk:|SigIgn:) echo "$value";; esac; done < /proc/self/status > \(d)/signals
            ls -l /proc/$$/fd > \(d)/fds
            readlink /proc/$$/fd/3 /proc/$$/fd/4 /proc/$$/fd/5 > \(d)/pipes
            printf '%s\\n' "$CONTAINER_ID" "$CONTAINER_NAMESPACE" "$0" "$@" > \(d)/env
            env > \(d)/environment
            exec 5>&-
            cat <&3 > \(d)/out 4<&- &
            cat <&4 > \(d)/err 3<&- &
            exec 3<&- 4<&-
            wait
            """
        let uri = Self.shellURI(script, extra: "arg=value&second=2")
        let started = try await BinaryLogger.start(uri, containerID: "c1", namespace: "ns1", logger: logger)
        // Ready means the files written before `exec 5>&-` are complete.
        // While `ls` runs, dash has fd 1 on the file and keeps the original fd 1 as fd 10.
        let fds = Dictionary(
            uniqueKeysWithValues: read("fds").split(separator: "\n").compactMap { line -> (String, String)? in
                let fields = line.split(separator: " ")
                guard let arrow = fields.firstIndex(of: "->"), arrow > 0, arrow + 1 < fields.count else { return nil }
                return (String(fields[arrow - 1]), String(fields[arrow + 1]))
            })
        #expect(Set(fds.keys).subtracting(["10"]) == ["0", "1", "2", "3", "4", "5"], "\(fds)")
        #expect(["0", "2", "10"].map { fds[$0] } == ["/dev/null", "/dev/null", "/dev/null"], "\(read("fds"))")
        // Nothing blocked, no signal ignored (glibc's posix_spawn leaves its internal signals 32 and 33
        // ignored). Read by a builtin before the shell first forks: dash blocks every signal around a fork.
        let signals = read("signals").split(separator: "\n").compactMap { UInt64($0, radix: 16) }
        #expect(signals.count == 2 && signals[0] == 0 && signals[1] & 0x7FFF_FFFF == 0, "\(read("signals"))")
        #expect(read("env") == "c1\nns1\narg\nvalue\nsecond\n2\n")
        #expect(
            read("environment").split(separator: "\n").sorted().filter { !$0.hasPrefix("PWD=") && !$0.hasPrefix("OLDPWD=") }
                == ["CONTAINER_ID=c1", "CONTAINER_NAMESPACE=ns1"])
        let pipes = Set(read("pipes").split(separator: "\n").map(String.init))
        #expect(pipes.count == 3 && pipes.allSatisfy { $0.hasPrefix("pipe:[") }, "\(pipes)")

        let outputs = try #require(started.takeOutputs())
        #expect(started.takeOutputs() == nil)  // handed over once
        Self.write(outputs.stdout, "out line\n")
        Self.write(outputs.stderr, "err line\n")
        close(outputs.stdout)
        close(outputs.stderr)
        await started.stop()
        #expect(started.exitStatus == 0)
        #expect(read("out") == "out line\n")
        #expect(read("err") == "err line\n")
        #expect(kill(started.pid, 0) != 0)  // reaped: no such process
        #expect(Self.ownDescriptorTargets().isDisjoint(with: pipes))
    }

    @Test(arguments: ["/bin/false", "/bin/true"])
    func exitingBeforeTakingOutputFails(path: String) async {
        await #expect { try await BinaryLogger.start(BinaryLogURI(path: path, arguments: []), containerID: "c", namespace: "n", logger: logger) } throws: {
            guard case .failedPrecondition(let detail) = $0 as? ShimError else { return false }
            return detail.contains("logging binary \(path) exited")
        }
    }

    @Test func neverReadyTimesOutAndIsKilled() async throws {
        // Holds fd 5 open and never closes it.
        let uri = Self.shellURI("exec sleep 987654")
        let started = ContinuousClock.now
        await #expect { try await BinaryLogger.start(uri, containerID: "c", namespace: "n", logger: logger, readinessTimeout: .milliseconds(300)) } throws: {
            guard case .failedPrecondition(let detail) = $0 as? ShimError else { return false }
            return detail.contains("logging binary /bin/sh did not signal readiness")
        }
        // Bounded, not hung until the sleep ends: generous, for a 2-core host that boots VMs in other suites meanwhile.
        #expect(ContinuousClock.now - started < .seconds(30))
        let left = Self.processes().filter { $0.contains("sleep 987654") }
        #expect(left.isEmpty, "\(left)")
    }

    @Test func notExecutableAsAProgram() async throws {
        let path = "\(directory)/not-a-program"
        try "no shebang, not ELF\n".write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        await #expect { try await BinaryLogger.start(BinaryLogURI(path: path, arguments: []), containerID: "c", namespace: "n", logger: logger) } throws: {
            guard case .invalidArgument(let detail) = $0 as? ShimError else { return false }
            return detail.contains("starting logging binary \(path)")
        }
    }

    @Test func stopEscalatesToSIGTERMThenSIGKILL() async throws {
        // Exits on SIGTERM (sleep's default action), after ignoring its input's EOF.
        let polite = try await BinaryLogger.start(
            Self.shellURI("exec 5>&- 3<&- 4<&-; exec sleep 987655"),
            containerID: "c", namespace: "n", logger: logger)
        if let outputs = polite.takeOutputs() { close(outputs.stdout); close(outputs.stderr) }
        await polite.stop(exitGrace: .milliseconds(100), termGrace: .seconds(5))
        #expect(polite.exitStatus == 128 + SIGTERM)

        // Ignores SIGTERM too.
        let stubborn = try await BinaryLogger.start(
            Self.shellURI("trap '' TERM; exec 5>&- 3<&- 4<&-; while :; do sleep 1; done"),
            containerID: "c", namespace: "n", logger: logger)
        let started = ContinuousClock.now
        async let first: Void = stubborn.stop(exitGrace: .milliseconds(100), termGrace: .milliseconds(200))
        async let second: Void = stubborn.stop()  // joins the first stop, its grace periods are the first's
        _ = await (first, second)
        #expect(stubborn.exitStatus == 128 + SIGKILL)
        #expect(ContinuousClock.now - started < .seconds(3))
        await stubborn.abort()  // after the fact: nothing to do
    }

    static func processes() -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { entry in
            guard Int32(entry) != nil, let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline"), !data.isEmpty else { return nil }
            return String(decoding: data.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
        }
    }
}
