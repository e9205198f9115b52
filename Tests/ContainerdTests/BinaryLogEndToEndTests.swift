import Foundation
import Testing

/// `ctr --log-uri binary:///…` (what nerdctl's `run -d` uses): the shim starts the logging binary
/// with containerd's contract (stdout on fd 3, stderr on fd 4, readiness by closing fd 5,
/// CONTAINER_ID and CONTAINER_NAMESPACE, the query as arguments) and nothing of it outlives the
/// process, the container or the VM. Part of `ShimEndToEndTests` (serialized with it).
extension ShimEndToEndTests {
    /// A logging binary as a shell script: writes what it was given into `<dir>/out-$CONTAINER_ID/`
    /// (`env`: id, namespace, arguments; `stdout`, `stderr`; `done` once both streams ended).
    private func writeLoggerScript() throws -> String {
        let path = "\(containerd.directory)/test-logger.sh"
        let script = """
            #!/bin/sh
            d="${0%/*}/out-$CONTAINER_ID"
            mkdir -p "$d"
            printf '%s\\n' "$CONTAINER_ID" "$CONTAINER_NAMESPACE" "$@" > "$d/env"
            exec 5>&-
            cat <&3 > "$d/stdout" 4<&- &
            cat <&4 > "$d/stderr" 3<&- &
            exec 3<&- 4<&-
            wait
            echo done > "$d/done"

            """
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        return path
    }

    private func loggerOutput(_ id: String) -> String { "\(containerd.directory)/out-\(id)" }

    private func read(_ path: String) -> String {
        (try? String(contentsOfFile: path, encoding: .utf8)) ?? "<missing \(path)>"
    }

    /// Waits (bounded) until `body` holds.
    private func eventually(timeout: TimeInterval = 15, _ body: () -> Bool) -> Bool {
        pollUntil(timeout: timeout, every: 0.05, body)
    }

    /// Logging binaries still there, zombies included: processes named after the script.
    private func runningLoggers(_ script: String) -> [String] {
        let name = String(script.split(separator: "/").last?.prefix(15) ?? "")
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { entry in
            guard Int32(entry) != nil, let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")"),
                stat[stat.index(after: open)..<close] == name
            else { return nil }
            return "\(entry): \(stat.prefix(80))"
        }
    }

    @Test func binaryLogURIGetsTheOutput() throws {
        let script = try writeLoggerScript()
        let id = "binlog"
        try? FileManager.default.removeItem(atPath: loggerOutput(id))
        let result = containerd.runContainer(
            id, ["sh", "-c", "echo out; echo err >&2"],
            options: ["--log-uri", "binary://\(script)?arg=value"])
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output == "", "the output went to the logger, not to ctr: \(result.output)")
        #expect(eventually { FileManager.default.fileExists(atPath: "\(loggerOutput(id))/done") }, "the logger never saw EOF")
        #expect(read("\(loggerOutput(id))/stdout") == "out\n")
        #expect(read("\(loggerOutput(id))/stderr") == "err\n")
        #expect(read("\(loggerOutput(id))/env") == "\(id)\n\(containerd.namespace)\narg\nvalue\n")
        #expect(eventually { runningLoggers(script).isEmpty }, "\(runningLoggers(script))")
        #expect(HostLeftovers.awaitClean(namespace: containerd.namespace) == [])
    }

    @Test func brokenLoggersFailCreateAndLeaveNothing() throws {
        let quitter = "\(containerd.directory)/quitting-logger.sh"
        try "#!/bin/sh\nexit 3\n".write(toFile: quitter, atomically: true, encoding: .utf8)
        chmod(quitter, 0o755)
        let cases = [
            ("binary:///nonexistent/logger", "logging binary /nonexistent/logger: No such file or directory"),
            ("binary://\(quitter)", "logging binary \(quitter) exited (status 3) before taking the process's output"),
            ("binary://relative/logger", "reads as a host"),
        ]
        for (index, (uri, message)) in cases.enumerated() {
            let id = "badlog\(index)"
            let result = containerd.runContainer(id, ["echo", "lost"], options: ["--log-uri", uri])
            #expect(result.status != 0)
            #expect(result.output.contains(message), "\(uri): \(result.output)")
            containerd.ctr(["container", "rm", id])
        }
        #expect(runningLoggers(quitter).isEmpty)
        #expect(HostLeftovers.awaitClean(namespace: containerd.namespace) == [])
    }

    /// Exec with its own logger, a failing exec logger, and the init's logger ending with the VM.
    @Test func binaryLogURIForExecsAndADyingVM() throws {
        let script = try writeLoggerScript()
        let id = "binlogpod"
        for name in [id, "lx1", "lx2"] { try? FileManager.default.removeItem(atPath: loggerOutput(name)) }
        let started = containerd.ctr([
            "run", "-d", "--runtime", "io.containerd.swiftkata.v2", "--log-uri", "binary://\(script)?arg=init",
            containerd.imageRef, id, "sh", "-c", "echo init-out; exec sleep 1000",
        ])
        try #require(started.status == 0, "\(started.output)")
        defer {
            containerd.ctr(["task", "rm", "-f", id])
            containerd.ctr(["container", "rm", id])
        }
        #expect(eventually { read("\(loggerOutput(id))/stdout") == "init-out\n" }, "\(read("\(loggerOutput(id))/stdout"))")
        #expect(read("\(loggerOutput(id))/env") == "\(id)\n\(containerd.namespace)\narg\ninit\n")

        // An exec's logger sees the exec id as CONTAINER_ID and is gone once the exec's output ended.
        let exec = containerd.ctr([
            "task", "exec", "--exec-id", "lx1", "--log-uri", "binary://\(script)?arg=exec&second=2", id,
            "sh", "-c", "echo exec-out; echo exec-err >&2; exit 3",
        ])
        #expect(exec.status == 3, "\(exec.output)")
        #expect(eventually { FileManager.default.fileExists(atPath: "\(loggerOutput("lx1"))/done") })
        #expect(read("\(loggerOutput("lx1"))/stdout") == "exec-out\n")
        #expect(read("\(loggerOutput("lx1"))/stderr") == "exec-err\n")
        #expect(read("\(loggerOutput("lx1"))/env") == "lx1\n\(containerd.namespace)\narg\nexec\nsecond\n2\n")
        #expect(eventually { runningLoggers(script).count == 1 }, "only the init's logger runs: \(runningLoggers(script))")

        let missing = containerd.ctr(["task", "exec", "--exec-id", "lx2", "--log-uri", "binary:///nonexistent/logger", id, "true"])
        #expect(missing.status != 0)
        #expect(missing.output.contains("logging binary /nonexistent/logger"), "\(missing.output)")
        let still = containerd.ctr(["task", "exec", "--exec-id", "lx3", id, "echo", "alive"])
        #expect(still.status == 0 && still.output == "alive\n", "\(still.output)")

        // The VM dies: the init's output ends, its logger drains, exits and is reaped.
        let qemu = try #require(HostLeftovers.processes().first { $0.1.contains("guest=swiftkata-\(containerd.namespace)-\(id)") })
        kill(qemu.0, SIGKILL)
        #expect(eventually { FileManager.default.fileExists(atPath: "\(loggerOutput(id))/done") })
        #expect(eventually { runningLoggers(script).isEmpty }, "\(runningLoggers(script))")
        containerd.ctr(["task", "rm", "-f", id])
        containerd.ctr(["container", "rm", id])
        #expect(HostLeftovers.awaitClean(namespace: containerd.namespace, timeout: 15) == [])
    }
}
