import Foundation
import Testing

/// Components failing under running and starting pods, through containerd: the guest agent dying,
/// libvirtd and virtlogd killed, containerd killed in the middle of a create, the shim and the
/// libvirt helper killed while a VM boots, and a full state directory. Each test checks what the
/// user sees and that nothing is left behind. Part of `ShimEndToEndTests` (serialized with it: its
/// leftover checks assume no other pod of the test namespace runs).
extension ShimEndToEndTests {
    /// PID 1 of the guest exits right after the container started: the guest kernel panics, its
    /// domain ends, and the task stops with 255 within seconds, with the reason in containerd's log.
    @Test func aGuestAgentThatDiesEndsThePodWith255() throws {
        let id = "fault-agent-dies"
        let started = try runHostile(id, "die")
        try #require(started.status == 0, "\(started.output)")
        defer { removeContainer(id) }
        #expect(
            awaitTaskLine(id, timeout: 30) { $0.contains("STOPPED") } != nil,
            "the task did not stop after the guest's PID 1 died: \(containerd.ctr(["task", "ls"]).output)")
        let removed = containerd.ctr(["task", "rm", id], timeout: 30)
        #expect(removed.status == 0, "\(removed.output)")
        let log = (try? String(contentsOfFile: "\(containerd.directory)/containerd.log", encoding: .utf8)) ?? ""
        #expect(log.contains("pod VM stopped unexpectedly"), "containerd's log does not say why")
        removeContainer(id)
        #expect(HostLeftovers.awaitClean(namespace: containerd.namespace) == [])
    }

    /// libvirtd killed: a running pod keeps running and answering (the shim watches QEMU itself), a
    /// new pod fails clearly and leaves nothing, and once libvirtd is back the running pod is
    /// deleted cleanly and new pods start again.
    @Test func libvirtdKilledUnderARunningPodAndDuringACreate() throws {
        let id = "fault-libvirtd"
        let started = containerd.ctr(["run", "-d", "--runtime", "io.containerd.swiftkata.v2", containerd.imageRef, id, "sleep", "1000"])
        try #require(started.status == 0, "\(started.output)")
        defer { removeContainer(id) }
        #expect(PrivateContainerd.run("/usr/bin/pkill", ["-9", "-x", "libvirtd"]).status == 0)
        #expect(pollUntil(timeout: 10) { PrivateContainerd.run("/usr/bin/pgrep", ["-x", "-r", "R,S,D", "libvirtd"]).status != 0 })
        var restarted = false
        defer { if !restarted { _ = PrivateContainerd.restartLibvirtd() } }

        let exec = containerd.ctr(["task", "exec", "--exec-id", "without-libvirtd", id, "sh", "-c", "echo still here"])
        #expect(exec.status == 0 && exec.output == "still here\n", "\(exec.output)")
        let refused = containerd.runContainer("fault-no-libvirtd", ["true"])
        #expect(refused.status != 0)
        #expect(refused.output.contains("libvirt"), "the error does not name libvirt: \(refused.output)")
        containerd.ctr(["container", "rm", "fault-no-libvirtd"])

        if let error = PrivateContainerd.restartLibvirtd() { Issue.record(Comment(rawValue: error)) }
        restarted = true
        let after = containerd.runContainer("fault-libvirtd-back", ["sh", "-c", "echo booted"])
        #expect(after.status == 0 && after.output == "booted\n", "\(after.output)")
        removeContainer(id)
        #expect(HostLeftovers.awaitClean(namespace: containerd.namespace) == [])
    }

    /// libvirtd killed while it starts a pod's domain (the libvirt helper is inside its create call):
    /// the create either finishes or fails naming libvirt, and once libvirtd is back (it finds a QEMU
    /// it had started and takes it over) the container's removal leaves no domain and no QEMU.
    @Test func libvirtdKilledInsideADomainStart() throws {
        let id = "fault-libvirtd-create"
        let output = Pipe()
        let run = try containerd.ctrInBackground(["run", "--rm", "--runtime", "io.containerd.swiftkata.v2", containerd.imageRef, id, "true"], output: output)
        defer { removeContainer(id) }
        var restarted = false
        defer { if !restarted { _ = PrivateContainerd.restartLibvirtd() } }
        var killed = false
        _ = pollUntil(timeout: 30, every: 0.005) {
            guard HostLeftovers.processes().contains(where: { $0.1.contains("swiftkata-vm create") && $0.1.contains("-\(id)-") }) else { return false }
            killed = PrivateContainerd.run("/usr/bin/pkill", ["-9", "-x", "libvirtd"]).status == 0
            return true
        }
        try #require(killed, "never saw the helper starting the domain")
        run.waitUntilExit()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        if run.terminationStatus != 0 {
            #expect(text.contains("libvirt"), "the error does not name libvirt: \(text)")
        }
        if let error = PrivateContainerd.restartLibvirtd() { Issue.record(Comment(rawValue: error)) }
        restarted = true
        removeContainer(id)
        #expect(HostLeftovers.awaitClean(namespace: containerd.namespace, timeout: 30) == [])
        #expect(containerd.domainName(of: id) == nil, "a domain is left running")
        let after = containerd.runContainer("fault-libvirtd-create-back", ["sh", "-c", "echo booted"])
        #expect(after.status == 0 && after.output == "booted\n", "\(after.output)")
        #expect(HostLeftovers.awaitClean(namespace: containerd.namespace) == [])
    }

    /// virtlogd (which writes every pod's console log) killed: the running pod goes on, is deleted
    /// cleanly, and once virtlogd is back new pods start.
    @Test func virtlogdKilledUnderARunningPod() throws {
        let id = "fault-virtlogd"
        let started = containerd.ctr(["run", "-d", "--runtime", "io.containerd.swiftkata.v2", containerd.imageRef, id, "sleep", "1000"])
        try #require(started.status == 0, "\(started.output)")
        defer { removeContainer(id) }
        #expect(PrivateContainerd.run("/usr/bin/pkill", ["-9", "-x", "virtlogd"]).status == 0)
        defer { _ = PrivateContainerd.startVirtlogd() }
        let exec = containerd.ctr(["task", "exec", "--exec-id", "without-virtlogd", id, "sh", "-c", "echo still here"])
        #expect(exec.status == 0 && exec.output == "still here\n", "\(exec.output)")
        removeContainer(id)
        #expect(HostLeftovers.awaitClean(namespace: containerd.namespace) == [])
        if let error = PrivateContainerd.startVirtlogd() { Issue.record(Comment(rawValue: error)) }
        let after = containerd.runContainer("fault-virtlogd-back", ["sh", "-c", "echo booted"])
        #expect(after.status == 0 && after.output == "booted\n", "\(after.output)")
        #expect(HostLeftovers.awaitClean(namespace: containerd.namespace) == [])
    }

    /// The shim killed while its VM boots (between the domain's start and the agent's answer), as a
    /// pod deleted mid-boot leaves it: `ctr run` fails, containerd's cleanup (`delete`) destroys the
    /// half-booted VM from the identity the shim saved first, and nothing is left.
    @Test func theShimKilledWhileItsVMBootsLeavesNothing() throws {
        let id = "fault-boot-shim"
        let run = try containerd.ctrInBackground(["run", "-d", "--runtime", "io.containerd.swiftkata.v2", containerd.imageRef, id, "sleep", "1000"])
        defer { removeContainer(id) }
        // The domain exists: the VM is booting.
        #expect(pollUntil(timeout: 30, every: 0.02) { containerd.domainName(of: id) != nil }, "the VM never started booting")
        let shim = HostLeftovers.processes().first { $0.1.contains("containerd-shim-swiftkata-v2") && $0.1.contains("-id \(id)") }
        let shimPID = try #require(shim?.0)
        #expect(kill(pid_t(shimPID), SIGKILL) == 0)
        run.waitUntilExit()
        #expect(run.terminationStatus != 0, "ctr run succeeded although its shim died mid-boot")
        removeContainer(id)
        #expect(HostLeftovers.awaitClean(namespace: containerd.namespace, timeout: 30) == [])
        #expect(containerd.domainName(of: id) == nil, "the half-booted domain is still running")
    }

    /// The libvirt helper (`swiftkata-vm`) killed in the middle of a domain start: the create fails
    /// naming the helper, and no domain, tap or directory is left.
    @Test func theLibvirtHelperKilledMidDomainStartLeavesNothing() throws {
        let id = "fault-helper"
        let output = Pipe()
        let run = try containerd.ctrInBackground(["run", "--rm", "--runtime", "io.containerd.swiftkata.v2", containerd.imageRef, id, "true"], output: output)
        defer { removeContainer(id) }
        var killed = false
        _ = pollUntil(timeout: 30, every: 0.005) {
            guard let helper = HostLeftovers.processes().first(where: { $0.1.contains("swiftkata-vm create") && $0.1.contains("-\(id)-") }) else {
                return false
            }
            killed = kill(pid_t(helper.0), SIGKILL) == 0
            return true
        }
        try #require(killed, "never saw the helper starting the domain")
        run.waitUntilExit()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(run.terminationStatus != 0, "the create succeeded although its helper was killed: \(text)")
        #expect(text.contains("swiftkata-vm"), "the error does not name the helper: \(text)")
        removeContainer(id)
        #expect(HostLeftovers.awaitClean(namespace: containerd.namespace, timeout: 30) == [])
        #expect(containerd.domainName(of: id) == nil, "a domain is left running")
    }

    /// containerd killed (-9) while a pod's VM boots, then started again: the client's create fails,
    /// and removing the task and container afterwards (what the kubelet or a user does) leaves nothing.
    @Test func containerdKilledDuringACreate() throws {
        let id = "fault-containerd"
        let run = try containerd.ctrInBackground(["run", "-d", "--runtime", "io.containerd.swiftkata.v2", containerd.imageRef, id, "sleep", "1000"])
        #expect(pollUntil(timeout: 30, every: 0.02) { containerd.domainName(of: id) != nil }, "the VM never started booting")
        if let error = containerd.restartContainerd(signal: SIGKILL) { Issue.record(Comment(rawValue: error)) }
        run.waitUntilExit()
        removeContainer(id)
        #expect(HostLeftovers.awaitClean(namespace: containerd.namespace, timeout: 30) == [])
        #expect(containerd.domainName(of: id) == nil, "a domain is left running")
        let after = containerd.runContainer("fault-containerd-back", ["sh", "-c", "echo booted"])
        #expect(after.status == 0 && after.output == "booted\n", "\(after.output)")
        #expect(HostLeftovers.awaitClean(namespace: containerd.namespace) == [])
    }

    /// A state directory with no space left: the create fails saying so, and leaves nothing.
    @Test func aFullStateDirectoryFailsTheCreateClearly() throws {
        let state = "\(containerd.directory)/full-state"
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        #expect(PrivateContainerd.run("/bin/mount", ["-t", "tmpfs", "-o", "size=1m,nr_inodes=64", "tmpfs", state]).status == 0)
        defer { _ = PrivateContainerd.run("/bin/umount", ["-l", state]) }
        // Fill it: nothing more fits.
        _ = PrivateContainerd.run("/bin/dd", ["if=/dev/zero", "of=\(state)/filler", "bs=64k", "count=64"])
        let config = try configuration(named: "full-state", table: "runtime", lines: "state_dir = \"\(state)\"")
        let result = containerd.runContainer("fault-full", ["true"], options: ["--runtime-config-path", config])
        containerd.ctr(["container", "rm", "fault-full"])
        #expect(result.status != 0)
        #expect(result.output.contains("No space left on device") || result.output.contains("resource exhausted"), "\(result.output)")
        let left = (try? FileManager.default.contentsOfDirectory(atPath: state)) ?? []
        #expect(
            left.filter { $0 != "filler" && $0 != "guest" }.isEmpty || (try? FileManager.default.contentsOfDirectory(atPath: "\(state)/pods"))?.isEmpty == true,
            "left in the state directory: \(left)")
        #expect(HostLeftovers.awaitClean(namespace: containerd.namespace) == [])
        #expect(!(PrivateContainerd.run("/usr/bin/virsh", ["-c", "qemu:///system", "list", "--name"]).output.contains("fault-full")))
    }

    /// A VM whose guest boots and then never answers (its PID 1 idles): the boot is failed once the
    /// VM stops making progress (boot_stall_ms, 5 s), not after the whole dial limit (60 s), with a
    /// message that says so, and nothing is left.
    @Test func aBootThatStopsProgressingFailsAtTheStallNotTheLimit() throws {
        let began = Date()
        let result = try runHostile("fault-hang", "hang", detached: false)
        let waited = Date().timeIntervalSince(began)
        containerd.ctr(["container", "rm", "fault-hang"])
        #expect(result.status != 0)
        #expect(result.output.contains("made no progress"), "\(result.output)")
        #expect(waited < 40, "the stalled boot was failed after \(waited) s")
        #expect(HostLeftovers.awaitClean(namespace: containerd.namespace) == [])
    }

    /// A pod asking for more memory than the host has: refused before any VM starts, naming the
    /// limit (the host's memory), and nothing is left. (An over-committed host that runs out later
    /// kills QEMU: `killedQEMUStopsTheTaskWith255`.)
    @Test func aPodLargerThanTheHostsMemoryIsRefusedBeforeItsVMStarts() throws {
        let config = try configuration(named: "sized", table: "hypervisor", lines: "enable_annotations = [\"memory_mib\"]")
        let result = containerd.runContainer(
            "fault-too-big", ["true"], options: ["--runtime-config-path", config, "--annotation", "io.swiftkata.hypervisor.memory_mib=\(64 << 20)"])
        containerd.ctr(["container", "rm", "fault-too-big"])
        #expect(result.status != 0)
        #expect(result.output.contains("the host's memory"), "\(result.output)")
        #expect(containerd.domainName(of: "fault-too-big") == nil)
        #expect(HostLeftovers.awaitClean(namespace: containerd.namespace) == [])
    }
}
