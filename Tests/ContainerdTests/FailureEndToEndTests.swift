import Foundation
import Testing

/// What goes wrong in production, through containerd: a guest that stops answering, a container the
/// guest's OOM killer ends, and containerd itself restarting under running pods. Part of
/// `ShimEndToEndTests` (serialized with it: its leftover checks assume no other pod runs).
extension ShimEndToEndTests {
    /// A configuration next to the test's own with `lines` added to `table`.
    func configuration(named name: String, table: String, lines: String) throws -> String {
        let path = "\(containerd.directory)/configuration-\(name).toml"
        var text = try String(contentsOfFile: containerd.configPath, encoding: .utf8)
        text += text.contains("[\(table)]\n") ? "" : "\n[\(table)]\n"
        text = text.replacingOccurrences(of: "[\(table)]\n", with: "[\(table)]\n\(lines)\n")
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func unresponsiveAgentFailsCallsWithDeadlineExceeded() throws {
        let config = try configuration(named: "short-timeout", table: "agent", lines: "call_timeout_ms = 1500")
        let id = "frozen"
        let started = containerd.ctr([
            "run", "-d", "--runtime", "io.containerd.swiftkata.v2", "--runtime-config-path", config,
            containerd.imageRef, id, "sleep", "1000",
        ])
        try #require(started.status == 0, "\(started.output)")
        defer { removeContainer(id) }
        let domain = try #require(containerd.domainName(of: id))
        // A paused VM is a guest that stops answering: the agent cannot reply while its vCPU is stopped.
        let suspended = PrivateContainerd.run("/usr/bin/virsh", ["-c", "qemu:///system", "suspend", domain])
        try #require(suspended.status == 0, "\(suspended.output)")
        let began = Date()
        let exec = containerd.ctr(["task", "exec", "--exec-id", "stuck", id, "true"], timeout: 60)
        let waited = Date().timeIntervalSince(began)
        #expect(exec.status != 0)
        #expect(exec.output.contains("deadline exceeded"), "\(exec.output)")
        #expect(waited < 15, "the call failed after \(waited) s, not after the configured 1.5 s")
        // Once the guest answers again, the pod works as before.
        let resumed = PrivateContainerd.run("/usr/bin/virsh", ["-c", "qemu:///system", "resume", domain])
        try #require(resumed.status == 0, "\(resumed.output)")
        let again = containerd.ctr(["task", "exec", "--exec-id", "after", id, "sh", "-c", "echo alive"])
        #expect(again.status == 0 && again.output == "alive\n", "\(again.output)")
        removeContainer(id)
        #expect(HostLeftovers.awaitClean(namespace: containerd.namespace) == [])
    }

    @Test func oomKillIsPublishedAsTaskOOM() throws {
        // `ctr events` prints every event of this containerd; the OOM must be among them.
        let events = try EventRecorder(socket: containerd.socket)

        // A shell doubling a string until the 32 MiB memory limit ends it.
        let result = containerd.runContainer(
            "oom", ["sh", "-c", "a=0123456789abcdef; while :; do a=$a$a; done"],
            options: ["--memory-limit", "\(32 << 20)"])
        #expect(result.status == 137, "\(result.output)")
        _ = pollUntil(timeout: 10, every: 0.05) { events.text.contains("/tasks/oom") }
        let seen = events.stop()
        let oomLines = seen.split(separator: "\n").filter { $0.contains("/tasks/oom") }
        // "… swiftkata-test /tasks/oom {"container_id":"oom"}"
        #expect(oomLines.contains { $0.contains(containerd.namespace) && $0.contains("\"container_id\":\"oom\"") }, "events seen:\n\(seen)")
        #expect(HostLeftovers.awaitClean(namespace: containerd.namespace) == [])
    }

    @Test func containerdRestartFindsRunningPodsAgain() throws {
        let id = "survivor"
        let started = containerd.ctr(["run", "-d", "--runtime", "io.containerd.swiftkata.v2", containerd.imageRef, id, "sleep", "1000"])
        try #require(started.status == 0, "\(started.output)")
        defer { removeContainer(id) }
        let qemuBefore = HostLeftovers.processes().filter { $0.1.contains("guest=swiftkata-\(containerd.namespace)-\(id)") }.map(\.0)

        if let error = containerd.restartContainerd() { Issue.record(Comment(rawValue: error)) }

        let tasks = containerd.ctr(["task", "ls"])
        #expect(tasks.output.split(separator: "\n").contains { $0.hasPrefix(id) && $0.contains("RUNNING") }, "\(tasks.output)")
        let exec = containerd.ctr(["task", "exec", "--exec-id", "after-restart", id, "sh", "-c", "echo still here"])
        #expect(exec.status == 0 && exec.output == "still here\n", "\(exec.output)")
        let qemuAfter = HostLeftovers.processes().filter { $0.1.contains("guest=swiftkata-\(containerd.namespace)-\(id)") }.map(\.0)
        #expect(qemuAfter == qemuBefore && qemuAfter.count == 1, "the pod's VM carried on: \(qemuBefore) → \(qemuAfter)")
        removeContainer(id)
        #expect(HostLeftovers.awaitClean(namespace: containerd.namespace) == [])
    }

    /// kill -9 of the pod's virtiofsd: the guest would block on its shared file system for good, so
    /// the shim destroys the VM; the task stops with 255 within seconds, kill and delete return, the
    /// reason is in containerd's log, and nothing is left behind.
    @Test func killedVirtiofsdEndsThePodInsteadOfWedgingIt() throws {
        let id = "nofs"
        let started = containerd.ctr(["run", "-d", "--runtime", "io.containerd.swiftkata.v2", containerd.imageRef, id, "sleep", "1000"])
        try #require(started.status == 0, "\(started.output)")
        defer { removeContainer(id) }
        let server = try #require(HostLeftovers.processes().first { $0.1.contains("virtiofsd") && $0.1.contains(HostLeftovers.podsDirectory) })
        #expect(kill(pid_t(server.0), SIGKILL) == 0)
        let began = Date()
        let stopped = awaitTaskLine(id, timeout: 30) { $0.contains("STOPPED") } != nil
        #expect(stopped, "the task did not stop after its virtiofsd was killed")
        #expect(Date().timeIntervalSince(began) < 30)
        let killed = containerd.ctr(["task", "kill", "-s", "SIGKILL", id], timeout: 30)
        #expect(killed.status == 0 || killed.output.contains("not found") || killed.output.contains("finished"), "\(killed.output)")
        let removed = containerd.ctr(["task", "rm", id], timeout: 30)
        #expect(removed.status == 0, "\(removed.output)")
        #expect(removed.output.contains("255") || removed.status == 0)
        let log = (try? String(contentsOfFile: "\(containerd.directory)/containerd.log", encoding: .utf8)) ?? ""
        #expect(log.contains("virtiofsd of the pod VM exited"), "containerd's log does not say why")
        removeContainer(id)
        #expect(HostLeftovers.awaitClean(namespace: containerd.namespace) == [])
    }

    @Test func hostNetworkIsRefusedClearly() {
        let result = containerd.runContainer("hostnet", ["true"], options: ["--net-host"])
        #expect(result.status != 0)
        #expect(result.output.contains("asks for the host's network"), "\(result.output)")
        containerd.ctr(["container", "rm", "hostnet"])
        #expect(HostLeftovers.awaitClean(namespace: containerd.namespace) == [])
    }
}
