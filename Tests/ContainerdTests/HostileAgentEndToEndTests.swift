import Foundation
import Synchronization
import Testing

/// A guest whose agent attacks the host: the test-only `swiftkata-hostile-agent` (Tests/HostileAgent)
/// is PID 1 of these pods, booted from an image of its own with `swiftkata.hostile=<attack>` on the
/// kernel command line. Each attack goes through the real shim, containerd, libvirtd and QEMU, and
/// each test checks what the user sees and that nothing is left on the host.
///
/// Part of `ShimEndToEndTests`: its leftover checks assume no other pod of the test namespace runs.
extension ShimEndToEndTests {
    /// A configuration booting the hostile image with `attack`.
    func hostileConfiguration(_ attack: String) throws -> String {
        let environment = ProcessInfo.processInfo.environment
        let image = try #require(
            environment["SWIFTKATA_HOSTILE_IMAGE"].flatMap { $0.isEmpty ? nil : $0 },
            "SWIFTKATA_HOSTILE_IMAGE is not set (make guest builds the hostile image; make test sets it)")
        var text = try String(contentsOfFile: containerd.configPath, encoding: .utf8)
        text = text.replacingOccurrences(
            of: #"image = "[^"]*""#, with: "image = \"\(image)\"\nkernel_params = \"swiftkata.hostile=\(attack)\"", options: .regularExpression)
        let path = "\(containerd.directory)/configuration-hostile-\(attack).toml"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func runHostile(_ id: String, _ attack: String, detached: Bool = true) throws -> (status: Int32, output: String) {
        let config = try hostileConfiguration(attack)
        return containerd.ctr(
            ["run"] + (detached ? ["-d"] : ["--rm"]) + [
                "--runtime", "io.containerd.swiftkata.v2", "--runtime-config-path", config, containerd.imageRef, id, "sleep", "1000",
            ])
    }

    /// The guest replies to CreateContainer with pid 2^32-1: the create fails naming the lie, and
    /// the VM, its share and its directories are gone.
    @Test func aGuestLyingAboutPidsFailsTheCreateAndLeavesNothing() throws {
        let result = try runHostile("hostile-pid", "lying-pid", detached: false)
        #expect(result.status != 0)
        #expect(result.output.contains("outside 1...4194304"), "\(result.output)")
        removeContainer("hostile-pid")
        #expect(HostLeftovers.awaitClean(namespace: containerd.namespace) == [])
    }

    /// The guest's process "exits" with status 2^32-1 in the year 9999: the user sees 255, and the
    /// exit is stamped by the host's clock.
    @Test func aGuestLyingAboutAnExitGivesStatus255AtTheHostsTime() throws {
        let events = try EventRecorder(socket: containerd.socket)
        let id = "hostile-exit"
        let started = try runHostile(id, "lying-exit")
        try #require(started.status == 0, "\(started.output)")
        defer { removeContainer(id) }
        #expect(awaitTaskLine(id, timeout: 20) { $0.contains("STOPPED") } != nil, "\(containerd.ctr(["task", "ls"]).output)")
        let deleted = containerd.ctr(["task", "rm", id])
        #expect(deleted.status == 0, "\(deleted.output)")
        let seen = events.stop()
        let exit = seen.split(separator: "\n").first { $0.contains("/tasks/exit") && $0.contains("\"container_id\":\"\(id)\"") }
        #expect(exit?.contains("\"exit_status\":255") == true, "\(seen.suffix(800))")
        #expect(exit?.contains("9999") == false, "the guest's exit time reached containerd: \(exit ?? "")")
        removeContainer(id)
        #expect(HostLeftovers.awaitClean(namespace: containerd.namespace) == [])
    }

    /// The guest lists 100 000 processes with pids past Linux's range and reports every statistic as
    /// UInt64.max: `ctr task ps` gets no pid the host cannot have, metrics saturate, and the shim
    /// still serves the pod.
    @Test func oversizedAndOutOfRangeRepliesAreBounded() throws {
        let id = "hostile-big"
        let started = try runHostile(id, "oversized")
        try #require(started.status == 0, "\(started.output)")
        defer { removeContainer(id) }
        let processes = containerd.ctr(["task", "ps", id])
        let rows = processes.output.split(separator: "\n").dropFirst()
        #expect(rows.count <= 16384, "\(rows.count) processes listed")
        #expect(!rows.contains { $0.split(separator: " ").first.flatMap { UInt64($0) }.map { $0 > 4_194_304 } ?? false }, "\(rows.prefix(3))")
        let metrics = containerd.ctr(["task", "metrics", id])
        #expect(metrics.status == 0, "\(metrics.output)")
        let tasks = containerd.ctr(["task", "ls"])
        #expect(tasks.output.contains(id), "\(tasks.output)")
        removeContainer(id)
        #expect(HostLeftovers.awaitClean(namespace: containerd.namespace) == [])
    }

    /// The guest answers every GetOOMEvent at once: containerd sees about one TaskOOM per second,
    /// not thousands, and the pod stays manageable.
    @Test func anOOMFloodReachesContainerdAsAboutOneEventPerSecond() throws {
        let events = try EventRecorder(socket: containerd.socket)
        let id = "hostile-oom"
        let began = Date()
        let started = try runHostile(id, "oom-flood")
        try #require(started.status == 0, "\(started.output)")
        defer { removeContainer(id) }
        // Let the flood run for a few seconds; the shim must keep answering meanwhile.
        Thread.sleep(forTimeInterval: 3)
        let tasks = containerd.ctr(["task", "ls"], timeout: 10)
        #expect(tasks.output.split(separator: "\n").contains { $0.hasPrefix(id) && $0.contains("RUNNING") }, "\(tasks.output)")
        removeContainer(id)
        let elapsed = Date().timeIntervalSince(began)
        let seen = events.stop()
        let ooms = seen.split(separator: "\n").filter { $0.contains("/tasks/oom") && $0.contains("\"container_id\":\"\(id)\"") }
        #expect(ooms.count >= 1, "the flood never reached containerd: \(seen.suffix(500))")
        #expect(Double(ooms.count) <= elapsed + 2, "\(ooms.count) OOM events in \(elapsed) s")
        #expect(HostLeftovers.awaitClean(namespace: containerd.namespace) == [])
    }

    /// The guest writes 12 MiB to its serial console: the pod's console log stays within its cap
    /// (virtlogd's 2 MiB x 4 files), the flood's end still arrives, and the host's /run keeps its space.
    @Test func aConsoleFloodStaysWithinTheLogsCap() throws {
        let id = "hostile-console"
        let started = try runHostile(id, "console-flood")
        try #require(started.status == 0, "\(started.output)")
        defer { removeContainer(id) }
        let pods = HostLeftovers.podsDirectory
        let pod = try #require(
            try FileManager.default.contentsOfDirectory(atPath: pods).first { FileManager.default.fileExists(atPath: "\(pods)/\($0)/shared/\(id)") })
        let log = "\(pods)/\(pod)/console.log"
        var total = 0
        let finished = pollUntil(timeout: 120, every: 0.5) {
            let files = ((try? FileManager.default.contentsOfDirectory(atPath: "\(pods)/\(pod)")) ?? []).filter { $0.hasPrefix("console.log") }
            total = files.reduce(0) { sum, name in sum + ((try? FileManager.default.attributesOfItem(atPath: "\(pods)/\(pod)/\(name)")[.size] as? Int) ?? 0) }
            return (try? String(contentsOfFile: log, encoding: .utf8))?.contains("console flood of") ?? false
        }
        #expect(finished, "the flood did not end within 120 s (\(total) bytes logged)")
        #expect(FileManager.default.fileExists(atPath: "\(log).1"), "the log was never rotated: the flood was smaller than the cap")
        #expect(total <= 8 << 20 + 64 << 10, "\(total) bytes of console log for one pod")
        removeContainer(id)
        #expect(HostLeftovers.awaitClean(namespace: containerd.namespace) == [])
    }
}
