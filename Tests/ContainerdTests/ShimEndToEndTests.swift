import Foundation
import Testing

/// containerd → containerd-shim-swiftkata-v2 → libvirt → QEMU (TCG here) → our kernel and agent, driven
/// with `ctr` against a containerd of the tests' own. Serialized: each test boots VMs on 2 cores.
@Suite(.serialized, .enabled(if: PrivateContainerd.guestPaths != nil, "needs SWIFTKATA_KERNEL and SWIFTKATA_IMAGE (make test)"))
struct ShimEndToEndTests {
    let containerd = PrivateContainerd.shared

    init() throws {
        if let error = containerd.setupError { Issue.record(Comment(rawValue: error)) }
        try #require(containerd.setupError == nil)
    }

    @Test func echoRunsInTheGuestKernel() {
        let result = containerd.runContainer("echo", ["sh", "-c", "echo hello from the guest; uname -r"])
        #expect(result.status == 0, "\(result.output)")
        let lines = result.output.split(separator: "\n").map(String.init)
        #expect(lines.first == "hello from the guest")
        var host = utsname()
        uname(&host)
        let hostRelease = withUnsafeBytes(of: host.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        #expect(lines.count == 2 && lines[1] != hostRelease && lines[1].hasSuffix("-swiftkata"), "guest kernel \(lines), host \(hostRelease)")
        #expect(HostLeftovers.awaitClean(namespace: containerd.namespace) == [])
        // runtime.debug = true: the guest's console lines reach containerd's log with the pod's id.
        let log = (try? String(contentsOfFile: "\(containerd.directory)/containerd.log", encoding: .utf8)) ?? ""
        #expect(log.split(separator: "\n").contains { $0.contains("guest console") && $0.contains("pod=echo") }, "no guest console line in containerd's log")
    }

    @Test func exitCodePropagates() {
        let result = containerd.runContainer("exit7", ["sh", "-c", "exit 7"])
        #expect(result.status == 7, "\(result.output)")
    }

    @Test func stdinIsPipedThroughCat() {
        let result = containerd.runContainer("cat", ["cat"], stdin: "line one\nline two\n")
        #expect(result.status == 0)
        #expect(result.output == "line one\nline two\n")
    }

    @Test func terminalGetsAPty() {
        // ctr -t needs a terminal of its own: script(1) provides one.
        let command =
            "/usr/bin/ctr --address \(containerd.socket) -n \(containerd.namespace) run --rm -t --runtime io.containerd.swiftkata.v2 \(containerd.imageRef) tty sh -c 'tty; stty size'"
        let result = PrivateContainerd.run("/usr/bin/script", ["-qec", command, "/dev/null"])
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("/dev/pts/0"), "\(result.output)")
    }

    @Test func configPathRuntimeOptionSelects9p() throws {
        let alternate = "\(containerd.directory)/configuration-9p.toml"
        let text = try String(contentsOfFile: containerd.configPath, encoding: .utf8)
            .replacingOccurrences(of: "[hypervisor]\n", with: "[hypervisor]\nshared_fs = \"9p\"\n")
        try text.write(toFile: alternate, atomically: true, encoding: .utf8)
        let result = containerd.runContainer("ninep", ["sh", "-c", "grep -c ' 9p ' /proc/mounts; echo ok"], options: ["--runtime-config-path", alternate])
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.hasSuffix("ok\n"))
    }

    @Test func badConfigurationIsReportedAtStart() throws {
        let broken = "\(containerd.directory)/configuration-broken.toml"
        try "[hypervisor]\nvcpus = 0\n".write(toFile: broken, atomically: true, encoding: .utf8)
        let result = containerd.runContainer("broken", ["true"], options: ["--runtime-config-path", broken])
        #expect(result.status != 0)
        #expect(result.output.contains("configuration-broken.toml:2: hypervisor.vcpus: 0 is out of range"), "\(result.output)")
        containerd.ctr(["container", "rm", "broken"])
        #expect(HostLeftovers.awaitClean(namespace: containerd.namespace) == [])
    }

    /// Kills and removes a container of the test namespace, whatever state it is in.
    func removeContainer(_ id: String) {
        containerd.ctr(["task", "kill", "-s", "SIGKILL", id])
        containerd.ctr(["task", "rm", "-f", id])
        containerd.ctr(["container", "rm", id])
    }

    /// One detached pod shared by the checks that need a running container.
    @Test func runningContainerLifecycle() throws {
        let id = "lifecycle"
        let started = containerd.ctr(["run", "-d", "--runtime", "io.containerd.swiftkata.v2", containerd.imageRef, id, "sleep", "1000"])
        try #require(started.status == 0, "\(started.output)")
        defer { removeContainer(id) }
        let exec = containerd.ctr(["task", "exec", "--exec-id", "e1", id, "sh", "-c", "echo from exec; exit 3"])
        #expect(exec.status == 3)
        #expect(exec.output == "from exec\n")

        // An exec's process carries its exec id, as runc's shim reports it.
        let background = containerd.ctr(["task", "exec", "--detach", "--exec-id", "bg", id, "sleep", "300"])
        #expect(background.status == 0, "\(background.output)")
        let ps = containerd.ctr(["task", "ps", id])
        #expect(ps.status == 0)
        #expect(ps.output.split(separator: "\n").count >= 3, "\(ps.output)")
        #expect(ps.output.contains("ExecID:bg"), "\(ps.output)")

        // The VM is accounted in the pod's cgroup (ctr's /<namespace>/<id>), in every hierarchy.
        let qemuPID =
            containerd.ctr(["task", "ls"]).output.split(separator: "\n").first { $0.hasPrefix("\(id) ") }?
            .split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.map(String.init) ?? ""
        let cgroups = String(decoding: procFile("/proc/\(qemuPID)/cgroup"), as: UTF8.self)
        let memory = cgroups.split(separator: "\n").first { $0.split(separator: ":").dropFirst().first == "memory" }
        #expect(memory?.hasSuffix(":/\(containerd.namespace)/\(id)") == true, "QEMU \(qemuPID): \(cgroups)")

        let metrics = containerd.ctr(["task", "metrics", id])
        #expect(metrics.status == 0, "\(metrics.output)")
        let usage = metrics.output.split(separator: "\n").first { $0.hasPrefix("memory.usage ") }
        #expect(usage.flatMap { UInt64($0.split(separator: " ").last ?? "") }.map { $0 > 0 } == true, "\(metrics.output)")
        #expect(metrics.output.contains("cpu.usage_usec"))

        #expect(containerd.ctr(["task", "pause", id]).status == 0)
        #expect(containerd.ctr(["task", "ls"]).output.contains("PAUSED"))
        #expect(containerd.ctr(["task", "resume", id]).status == 0)
        #expect(containerd.ctr(["task", "ls"]).output.contains("RUNNING"))

        #expect(containerd.ctr(["task", "kill", "-s", "SIGKILL", id]).status == 0)
        let stopped = awaitTaskLine(id) { $0.contains("STOPPED") }
        #expect(stopped != nil)
        let deleted = containerd.ctr(["task", "rm", id])
        #expect(deleted.output.contains("exit code 137"), "\(deleted.output)")
    }

    @Test func twoContainersShareOnePodVM() throws {
        let sandbox = ["--annotation", "io.kubernetes.cri.container-type=sandbox", "--annotation", "io.kubernetes.cri.sandbox-id=pod1"]
        let member = ["--annotation", "io.kubernetes.cri.container-type=container", "--annotation", "io.kubernetes.cri.sandbox-id=pod1"]
        defer {
            for id in ["pod1-app", "pod1"] {
                containerd.ctr(["task", "kill", "-s", "SIGKILL", id])
                containerd.ctr(["task", "rm", "-f", id])
                containerd.ctr(["container", "rm", id])
            }
        }
        try #require(
            containerd.ctr(["run", "-d", "--runtime", "io.containerd.swiftkata.v2"] + sandbox + [containerd.imageRef, "pod1", "sleep", "1000"]).status == 0)
        try #require(
            containerd.ctr(["run", "-d", "--runtime", "io.containerd.swiftkata.v2"] + member + [containerd.imageRef, "pod1-app", "sleep", "1000"]).status == 0)
        let qemus = HostLeftovers.processes().filter { $0.1.contains("guest=swiftkata-\(containerd.namespace)-pod1") }
        #expect(qemus.count == 1)
        let shims = HostLeftovers.processes().filter { $0.1.contains("containerd-shim-swiftkata-v2") && $0.1.contains(containerd.namespace) }
        #expect(shims.count == 1)
        let first = containerd.ctr(["task", "exec", "--exec-id", "ns1", "pod1", "readlink", "/proc/self/ns/pid"])
        let second = containerd.ctr(["task", "exec", "--exec-id", "ns2", "pod1-app", "readlink", "/proc/self/ns/pid"])
        #expect(first.status == 0 && second.status == 0)
        #expect(first.output.hasPrefix("pid:[") && first.output != second.output, "\(first.output) vs \(second.output)")
        // The sandbox reports QEMU's pid; the container that joined it, its anchor's (a host process of
        // its own, so that namespace paths containerd builds from it name that container).
        let tasks = containerd.ctr(["task", "ls"]).output
        var pids: [String: Int32] = [:]
        for line in tasks.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if fields.count > 1, let pid = Int32(fields[1]) { pids[String(fields[0])] = pid }
        }
        #expect(pids["pod1"] == qemus.first?.0, "the sandbox reports QEMU's pid: \(tasks)")
        let anchor = HostLeftovers.processes().first { $0.0 == pids["pod1-app"] }
        #expect(anchor?.1.hasPrefix("swiftkata-anchor ") == true, "the member reports its anchor's pid: \(tasks)")
    }

    @Test func killedShimLeavesNothingBehind() throws {
        try #require(containerd.ctr(["run", "-d", "--runtime", "io.containerd.swiftkata.v2", containerd.imageRef, "victim", "sleep", "1000"]).status == 0)
        let shim = try #require(HostLeftovers.processes().first { $0.1.contains("containerd-shim-swiftkata-v2") && $0.1.contains("-id victim") })
        kill(shim.0, SIGKILL)
        // containerd notices the lost connection and runs `delete`, which must destroy the VM.
        let left = HostLeftovers.awaitClean(namespace: containerd.namespace, shimSockets: [containerd.shimSocket("victim")], timeout: 15)
        #expect(left == [])
        containerd.ctr(["task", "rm", "-f", "victim"])
        containerd.ctr(["container", "rm", "victim"])
    }

    @Test func killedQEMUStopsTheTaskWith255() throws {
        try #require(containerd.ctr(["run", "-d", "--runtime", "io.containerd.swiftkata.v2", containerd.imageRef, "crash", "sleep", "1000"]).status == 0)
        defer {
            containerd.ctr(["task", "rm", "-f", "crash"])
            containerd.ctr(["container", "rm", "crash"])
        }
        let qemu = try #require(HostLeftovers.processes().first { $0.1.contains("guest=swiftkata-\(containerd.namespace)-crash") })
        kill(qemu.0, SIGKILL)
        #expect(awaitTaskLine("crash") { $0.contains("STOPPED") } != nil)
        let deleted = containerd.ctr(["task", "rm", "crash"])
        #expect(deleted.output.contains("exit code 255"), "\(deleted.output)")
        containerd.ctr(["container", "rm", "crash"])
        #expect(HostLeftovers.awaitClean(namespace: containerd.namespace, timeout: 15) == [])
    }

    @Test func twentySequentialRunsLeaveNothingBehind() {
        // The last ten reuse one id back to back, as `ctr run --rm` loops do: each new shim must wait
        // for the previous one (which answered Shutdown and is still destroying its VM).
        for run in 0..<20 {
            let result = containerd.runContainer(run < 10 ? "seq\(run)" : "seq-same", ["true"])
            #expect(result.status == 0, "run \(run): \(result.output)")
        }
        // Each shim removes its socket in containerd's directory too (containerd has deleted the
        // bundle, and the address file in it, by the time the shim exits).
        let sockets = (0..<10).map { containerd.shimSocket("seq\($0)") } + [containerd.shimSocket("seq-same")]
        #expect(HostLeftovers.awaitClean(namespace: containerd.namespace, shimSockets: sockets) == [])
    }

    /// Polls `ctr task ls` (bounded) for the task's line matching `condition`.
    func awaitTaskLine(_ id: String, timeout: TimeInterval = 10, _ condition: (String) -> Bool) -> String? {
        poll(timeout: timeout, every: 0.05) {
            containerd.ctr(["task", "ls"]).output.split(separator: "\n").map(String.init).first { $0.hasPrefix(id + " ") && condition($0) }
        }
    }
}
