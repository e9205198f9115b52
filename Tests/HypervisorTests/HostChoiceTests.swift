import AgentClient
import Foundation
import Hypervisor
import SwiftKataConfig
import Testing

@Suite("Accelerator and transport choice", .serialized)
struct HostChoiceTests {
    @Test func transportFollowsVhostVsock() {
        #expect(AgentTransportSetting.auto.resolve(vhostVsockPath: "/nonexistent/vhost-vsock") == .virtioSerial)
        #expect(AgentTransportSetting.auto.resolve(vhostVsockPath: "/dev/null") == .vsock)
        #expect(AgentTransportSetting.virtioSerial.resolve(vhostVsockPath: "/dev/null") == .virtioSerial)
        #expect(AgentTransportSetting.vsock.resolve(vhostVsockPath: "/nonexistent") == .vsock)
    }

    @Test func configuredAcceleratorsAreTakenAsIs() async {
        let probe = AcceleratorProbe(cacheDirectory: "/tmp/unused") { (false, "must not run") }
        #expect(await probe.choose(.kvm, kernelPath: "/k").0 == .kvm)
        #expect(await probe.choose(.tcg, kernelPath: "/k").0 == .tcg)
    }

    @Test func autoProbesOncePerBootAndKernel() async throws {
        let cache = "/tmp/swiftkata-probe-test-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: cache) }
        let kernel = "/tmp/swiftkata-probe-kernel-\(getpid())"
        #expect(FileManager.default.createFile(atPath: kernel, contents: Data("k".utf8)))
        defer { try? FileManager.default.removeItem(atPath: kernel) }
        let calls = Counter()
        let probe = AcceleratorProbe(cacheDirectory: cache) {
            await calls.increment()
            return (false, "no agent answer within 5 s")
        }
        let (first, reason) = await probe.choose(.auto, kernelPath: kernel)
        let (second, _) = await probe.choose(.auto, kernelPath: kernel)
        #expect(first == .tcg && second == .tcg)
        if access("/dev/kvm", R_OK | W_OK) == 0 {
            #expect(await calls.value == 1, "the second choice must come from the cache")
            #expect(reason.contains("KVM is present but a guest did not boot under it"))
        } else {
            #expect(await calls.value == 0)
            #expect(reason.contains("/dev/kvm"))
        }
    }

    /// The real probe on this host: with /dev/kvm present but nested KVM unable to boot Linux, the
    /// guest must not answer, and auto must pick TCG. Where KVM works, the probe passes instead.
    @Test func realKVMProbeOnThisHost() async throws {
        let env = ProcessInfo.processInfo.environment
        guard let bzImage = env["SWIFTKATA_KERNEL"], let image = env["SWIFTKATA_IMAGE"] else {
            Issue.record("SWIFTKATA_KERNEL and SWIFTKATA_IMAGE are not set: run `make test`")
            return
        }
        let kernel = URL(fileURLWithPath: bzImage).deletingLastPathComponent().appendingPathComponent("vmlinux").path
        let started = ContinuousClock.now
        let (ok, detail) = await KVMProbe.boot(kernel: kernel, image: try GuestImage.load(path: image), timeout: .seconds(5))
        print("KVM boot probe: ok=\(ok) (\(detail)) in \(ContinuousClock.now - started)")
        #expect(ContinuousClock.now - started < .seconds(10))
        // Either the agent answered under KVM, or the reason says why not (QEMU error, or no answer).
        #expect(ok ? detail.hasPrefix("agent ready") : (detail.hasPrefix("QEMU exited") || detail.hasPrefix("no agent answer")), "\(detail)")
    }
}

actor Counter {
    var value = 0
    func increment() { value += 1 }
}

/// QEMU's confinement, from /proc/PID/status and from qemu.conf.
@Suite struct QEMUConfinementTests {
    @Test func procStatusDecidesRootAndSeccomp() {
        let confined = QEMUConfinement.parse(status: "Name:\tqemu\nUid:\t64055\t64055\t64055\t64055\nSeccomp:\t2\n")
        #expect(confined == QEMUConfinement(uid: 64055, seccompMode: 2) && confined?.gaps == [])
        let savedRoot = QEMUConfinement.parse(status: "Uid:\t64055\t64055\t0\t64055\nSeccomp:\t2\n")
        #expect(savedRoot?.gaps == ["runs as root (qemu.conf user)"])
        let open = QEMUConfinement.parse(status: "Uid:\t107\t107\t107\t107\nSeccomp:\t0\n")
        #expect(open?.gaps == ["runs without its seccomp sandbox (qemu.conf seccomp_sandbox)"])
        #expect(QEMUConfinement.parse(status: "Name:\tgone\n") == nil)
    }

    @Test func qemuConfDefaultsAreConfined() {
        #expect(QEMUConfinement.predicted(qemuConf: nil) == (false, true))
        #expect(QEMUConfinement.predicted(qemuConf: "#user = \"root\"\nseccomp_sandbox = 1\n") == (false, true))
        #expect(QEMUConfinement.predicted(qemuConf: "user = \"+0\"\n") == (true, true))
        #expect(QEMUConfinement.predicted(qemuConf: "seccomp_sandbox = 0\n") == (false, false))
    }

    /// A QEMU started here (the KVM probe's TCG fallback is enough): as the kernel reports it.
    @Test func thisProcessIsSeenAsItIs() {
        let me = QEMUConfinement.of(pid: getpid())
        #expect(me?.uid == getuid())
    }
}
