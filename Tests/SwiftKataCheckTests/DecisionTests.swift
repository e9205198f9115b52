import Foundation
import SwiftKataCheck
import Testing

@Suite struct DecisionTests {
    @Test func healthyHostPassesEverything() async {
        let report = await FakeHost().report()
        #expect(report.checks.allSatisfy { $0.status == .pass && $0.fix.isEmpty }, "\(report.humanReadable)")
        #expect(report.ok && report.exitStatus == 0)
        #expect(report.accelerator.rawValue == "kvm" && report.transport.rawValue == "vsock")
        #expect(report.summary == "pods can run: accelerator kvm, agent transport vsock")
        #expect(report.check(named: "configuration")?.detail == "defaults (no /etc/swiftkata/configuration.toml)")
        #expect(report.check(named: "libvirt")?.detail == "qemu:///system: QEMU driver, libvirt 9.0.0, QEMU 7.2.0")
    }

    @Test func kvmThatCannotBootAGuestMeansTCGWithAWarning() async {
        var host = FakeHost()
        host.kvm = KVMProbeOutcome(
            usable: false, reason: "KVM is present but a guest did not boot under it (no agent answer within 5 seconds): using TCG (slow)")
        let report = await host.report()
        let check = report.check(named: "kvm-boot")
        #expect(check?.status == .warn)
        #expect(check?.detail.contains("did not boot") == true)
        #expect(check?.fix.contains("nested") == true)
        #expect(report.check(named: "kvm-device")?.status == .pass)
        #expect(report.accelerator.rawValue == "tcg")
        #expect(report.ok && report.exitStatus == 0)
        #expect(report.summary == "pods can run: accelerator tcg (slow), agent transport vsock (1 warning)")
        #expect(host.probes.fresh.withLock { $0 } == [false])
    }

    @Test func shimWithoutItsVMHelperFails() async {
        var host = FakeHost()
        host.executables.remove("/usr/local/bin/swiftkata-vm")
        let report = await host.report()
        #expect(report.check(named: "shim")?.status == .fail)
        #expect(report.check(named: "shim")?.detail.contains("/usr/local/bin/swiftkata-vm") == true)
        #expect(!report.ok)
    }

    @Test func missingNetworkToolsWarnWithTheirPackages() async {
        var host = FakeHost()
        host.executables.remove("/usr/sbin/tc")
        let report = await host.report()
        let check = report.check(named: "pod-network")
        #expect(check?.status == .warn)
        #expect(check?.detail.hasPrefix("/usr/sbin/tc missing") == true, "\(check?.detail ?? "")")
        #expect(check?.fix == "apt-get install iproute2 util-linux iptables")
        #expect(report.ok, "plain containers still run")
    }

    @Test func configuredKVMThatCannotBootFails() async {
        var host = FakeHost()
        host.setText(FakeHost.configurationPath, "[hypervisor]\naccelerator = \"kvm\"\n")
        host.kvm = KVMProbeOutcome(usable: false, reason: "KVM is present but a guest did not boot under it")
        let report = await host.report()
        #expect(report.check(named: "kvm-boot")?.status == .fail)
        #expect(report.check(named: "kvm-boot")?.fix.contains("accelerator = \"auto\"") == true)
        #expect(!report.ok && report.exitStatus == 1)
        #expect(report.summary == "pods cannot run: 1 check failed (kvm-boot)")
    }

    @Test func configuredTCGWhereKVMWorksWarns() async {
        var host = FakeHost()
        host.setText(FakeHost.configurationPath, "[hypervisor]\naccelerator = \"tcg\"\n")
        let report = await host.report()
        #expect(report.check(named: "kvm-boot")?.status == .warn)
        #expect(report.accelerator.rawValue == "tcg" && report.ok)
    }

    @Test func missingGuestKernelSkipsTheProbeAndFails() async {
        var host = FakeHost()
        host.files["/usr/share/swiftkata/vmlinux"] = nil
        let report = await host.report()
        #expect(host.probes.fresh.withLock { $0 }.isEmpty)
        #expect(report.check(named: "kvm-boot")?.status == .warn)
        #expect(report.check(named: "guest-kernel")?.status == .fail)
        #expect(report.check(named: "guest-kernel")?.fix.hasPrefix("make install") == true)
        #expect(!report.ok)
    }

    @Test func reprobeAsksForAFreshProbe() async {
        let host = FakeHost()
        _ = await host.report(CheckOptions(freshKVMProbe: true))
        #expect(host.probes.fresh.withLock { $0 } == [true])
    }

    @Test func noKVMDeviceOrCPUFlagsWarn() async {
        var host = FakeHost()
        host.setText("/proc/cpuinfo", "vendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 hypervisor\n")
        host.readWrite.remove("/dev/kvm")
        host.kvm = KVMProbeOutcome(usable: false, reason: "/dev/kvm is missing or not accessible: using TCG (slow)")
        let report = await host.report()
        #expect(report.check(named: "cpu-virtualization")?.status == .warn)
        #expect(
            report.check(named: "kvm-device")
                == CheckResult(name: "kvm-device", status: .warn, detail: "no /dev/kvm: pods use TCG (slow)", fix: "modprobe kvm_amd"))
        #expect(report.check(named: "kvm-boot")?.fix == "modprobe kvm_amd")
        #expect(report.accelerator.rawValue == "tcg" && report.ok)
    }

    /// A fresh host where no udev rule ran: /dev/kvm is root-only, so libvirt re-probes QEMU at every
    /// domain start. The check names it and the fix, though this process (root) can open the device.
    @Test func kvmDeviceClosedToTheQEMUUserWarnsWithTheFix() async {
        var host = FakeHost()
        host.closedToQEMU = ["/dev/kvm"]
        let check = await host.report().check(named: "kvm-device")
        #expect(check?.status == .warn)
        #expect(check?.detail.contains("cannot open /dev/kvm") == true)
        #expect(check?.fix.hasPrefix("chgrp kvm /dev/kvm && chmod 0660 /dev/kvm") == true)
    }

    /// The file names the handler, but containerd failed to load CRI (Debian's stock config plus a
    /// runtimes table without runc): the check asks containerd, not the file.
    @Test func aCRIPluginThatFailedToLoadFailsThoughTheFileLooksRight() async {
        var host = FakeHost()
        host.commands["/usr/bin/ctr --address /run/containerd/containerd.sock plugins ls"] = CommandOutput(status: 0, output: FakeHost.ctrPlugins(cri: "error"))
        let report = await host.report()
        #expect(report.check(named: "containerd-runtime")?.status == .pass)
        let cri = report.check(named: "containerd-cri")
        #expect(cri?.status == .fail && cri?.detail.contains("CRI plugin is error") == true)
        #expect(!report.ok)
    }

    /// qemu.conf running QEMU as root or without its seccomp sandbox fails the host (the shim refuses
    /// such pods), unless the configuration accepts it.
    @Test func unconfinedQEMUFailsUnlessAllowed() async {
        var host = FakeHost()
        host.setText("/etc/libvirt/qemu.conf", "#user = \"libvirt-qemu\"\nuser = \"root\"   # for a test\nseccomp_sandbox = 0\n")
        let check = await host.report().check(named: "qemu-confinement")
        #expect(check?.status == .fail)
        #expect(check?.detail.contains("runs QEMU as root (user) and turns QEMU's seccomp sandbox off") == true, "\(check?.detail ?? "")")
        host.setText(FakeHost.configurationPath, "[hypervisor]\nallow_unconfined_qemu = true\n")
        #expect(await host.report().check(named: "qemu-confinement")?.status == .warn)
    }

    @Test func autoTransportWithoutVsockWarnsAndUsesVirtioSerial() async {
        var host = FakeHost()
        host.readWrite.remove("/dev/vhost-vsock")
        let report = await host.report()
        #expect(
            report.check(named: "vhost-vsock")
                == CheckResult(
                    name: "vhost-vsock", status: .warn, detail: "no /dev/vhost-vsock: agent uses virtio-serial", fix: "modprobe vhost_vsock"))
        #expect(report.transport.rawValue == "virtio-serial" && report.ok)

        host.setText(FakeHost.configurationPath, "[agent]\ntransport = \"vsock\"\n")
        let configured = await host.report()
        #expect(configured.check(named: "vhost-vsock")?.status == .fail)
        #expect(!configured.ok)
    }

    @Test func badConfigurationFailsWithItsErrorAndTheRestUsesDefaults() async {
        var host = FakeHost()
        host.setText("/tmp/c.toml", "[hypervisor]\naccelerator = \"fast\"\n")
        let report = await host.report(CheckOptions(configurationPath: "/tmp/c.toml"))
        let check = report.check(named: "configuration")
        #expect(check?.status == .fail)
        #expect(check?.detail.hasPrefix("/tmp/c.toml:2: hypervisor.accelerator: \"fast\" is not one of") == true, "\(check?.detail ?? "")")
        #expect(check?.fix.hasPrefix("edit /tmp/c.toml line 2 (hypervisor.accelerator)") == true)
        #expect(report.checks.count == 23 && report.check(named: "guest-kernel")?.status == .pass)
        #expect(report.summary == "pods cannot run: 1 check failed (configuration)")
    }

    @Test func configurationPathComesFromTheFlagThenTheEnvironment() async {
        var host = FakeHost()
        host.environment["SWIFTKATA_CONFIG"] = "/nonexistent/swiftkata.toml"
        let fromEnvironment = await host.report()
        #expect(fromEnvironment.check(named: "configuration")?.status == .fail)
        #expect(fromEnvironment.check(named: "configuration")?.detail.contains("/nonexistent/swiftkata.toml: cannot open") == true)
        host.setText("/tmp/ok.toml", "[hypervisor]\nshared_fs = \"9p\"\n")
        let fromFlag = await host.report(CheckOptions(configurationPath: "/tmp/ok.toml"))
        #expect(fromFlag.check(named: "configuration") == CheckResult(name: "configuration", status: .pass, detail: "/tmp/ok.toml"))
    }

    @Test func virtiofsdIsRequiredOnlyForVirtioFS() async {
        var host = FakeHost()
        host.executables.remove("/usr/lib/qemu/virtiofsd")
        let virtioFS = await host.report()
        #expect(virtioFS.check(named: "virtiofsd")?.status == .fail)
        #expect(virtioFS.check(named: "virtiofsd")?.fix.contains("apt-get install qemu-system-x86") == true)
        host.setText(FakeHost.configurationPath, "[hypervisor]\nshared_fs = \"9p\"\n")
        let ninep = await host.report()
        #expect(ninep.check(named: "virtiofsd")?.status == .warn && ninep.ok)
    }

    @Test func guestKernelFormats() async {
        var host = FakeHost()
        host.files["/usr/share/swiftkata/vmlinux"] = FakeHost.bzImageHeader
        #expect(await host.report().check(named: "guest-kernel")?.detail == "/usr/share/swiftkata/vmlinux (bzImage)")
        host.setText("/usr/share/swiftkata/vmlinux", "#!/bin/sh\n")
        #expect(await host.report().check(named: "guest-kernel")?.status == .fail)
    }

    @Test func guestImageFormats() async {
        var host = FakeHost()
        let path = "/usr/share/swiftkata/swiftkata-rootfs.img"
        #expect(await host.report().check(named: "guest-image")?.detail == "\(path) (ext4 root disk)")
        host.setText(path, "070701")
        #expect(await host.report().check(named: "guest-image")?.detail == "\(path) (initramfs)")
        host.setText(path, "#!/bin/sh\n")
        let check = await host.report().check(named: "guest-image")
        #expect(check?.status == .fail)
        #expect(check?.detail == "\(path) is neither an ext4 root file system nor a cpio initramfs")
        #expect(check?.fix.hasPrefix("make install") == true)
    }

    @Test func warmPoolIsOffOrCounted() async {
        var host = FakeHost()
        #expect(await host.report().check(named: "warm-pool")?.detail.hasPrefix("off: every pod boots its own VM") == true)
        host.setText(FakeHost.configurationPath, "[pool]\nsize = 2\n")
        host.directories = [
            "/run/swiftkata/pool": [".lock", "0123456789abcdef", "fedcba9876543210"],
            "/run/swiftkata/pool/0123456789abcdef": ["006b0bf72a-f6ca7351", ".booting-006b0bf72b-00000001"],
            "/run/swiftkata/pool/fedcba9876543210": ["006b0bf700-12345678"],
        ]
        let check = await host.report().check(named: "warm-pool")
        #expect(check?.status == .pass)
        #expect(check?.detail == "size 2: 2 VMs waiting, 1 booting in /run/swiftkata/pool (the pool fills after the first pod)")
    }

    @Test func memoryMergingSaysWhetherPodsCanUseIt() async {
        var host = FakeHost()
        var check = await host.report().check(named: "ksm")
        #expect(check?.status == .pass)
        #expect(check?.detail.hasPrefix("not in this kernel (CONFIG_KSM); pods of this configuration cannot use it: with virtio-fs") == true)
        host.setText("/sys/kernel/mm/ksm/run", "0\n")
        #expect(await host.report().check(named: "ksm")?.detail.hasPrefix("off; pods of this configuration cannot use it") == true)
        host.setText("/sys/kernel/mm/ksm/run", "1\n")
        host.setText("/sys/kernel/mm/ksm/pages_sharing", "2560\n")
        check = await host.report().check(named: "ksm")
        #expect(check?.detail.hasPrefix("on: 2560 pages shared (10 MiB saved); pods of this configuration cannot use it") == true)
        host.setText(FakeHost.configurationPath, "[hypervisor]\nshared_fs = \"9p\"\n")
        host.setText("/sys/kernel/mm/ksm/run", "0\n")
        check = await host.report().check(named: "ksm")
        #expect(check?.detail.hasPrefix("off (echo 1 > /sys/kernel/mm/ksm/run turns it on, for ksmd's CPU); pods of this configuration (9p) can") == true)
    }

    @Test func servicesThatAreDownFail() async {
        var host = FakeHost()
        host.libvirt = .failure(
            HostProbeError("connecting to libvirt at qemu:///system: Failed to connect socket to '/var/run/libvirt/libvirt-sock': No such file or directory"))
        host.processes = []
        host.sockets = []
        host.executables.remove("/usr/local/bin/containerd-shim-swiftkata-v2")
        host.commands = [:]
        let report = await host.report()
        #expect(report.check(named: "libvirt")?.detail.contains("Failed to connect socket") == true)
        #expect(report.check(named: "libvirt")?.fix == "start libvirtd: `libvirtd -d` or `systemctl start libvirtd`")
        let failed = report.checks.filter { $0.status == .fail }.map(\.name)
        #expect(failed == ["tcg", "libvirt", "virtlogd", "containerd-running", "shim"])
        #expect(report.summary == "pods cannot run: 5 checks failed (tcg, libvirt, virtlogd, containerd-running, shim)")
    }

    @Test func cgroupV1OrHybridWarns() async {
        var host = FakeHost()
        host.files["/sys/fs/cgroup/cgroup.controllers"] = nil
        host.setText("/sys/fs/cgroup/unified/cgroup.controllers", "")
        #expect(await host.report().check(named: "cgroups")?.detail.hasPrefix("hybrid") == true)
        host.files["/sys/fs/cgroup/unified/cgroup.controllers"] = nil
        let report = await host.report()
        #expect(report.check(named: "cgroups")?.status == .warn && report.ok)
    }

    @Test func jsonHasTheDocumentedShape() async throws {
        var host = FakeHost()
        host.readWrite.remove("/dev/vhost-vsock")
        host.libvirt = .failure(HostProbeError("a \"quoted\"\nmessage\t\u{1}"))
        let report = await host.report()
        let object = try #require(try JSONSerialization.jsonObject(with: Data(report.json.utf8)) as? [String: Any])
        #expect(Set(object.keys) == ["ok", "checks", "accelerator", "transport"])
        #expect(object["ok"] as? Bool == false)
        #expect(object["accelerator"] as? String == "kvm")
        #expect(object["transport"] as? String == "virtio-serial")
        let checks = try #require(object["checks"] as? [[String: String]])
        #expect(checks.count == report.checks.count)
        #expect(checks.allSatisfy { Set($0.keys) == ["name", "status", "detail", "fix"] })
        #expect(Set(checks.compactMap { $0["status"] }).isSubset(of: ["pass", "fail", "warn"]))
        #expect(checks.first { $0["name"] == "libvirt" }?["detail"] == "a \"quoted\"\nmessage\t\u{1}")
        #expect(checks.first { $0["name"] == "vhost-vsock" }?["status"] == "warn")
    }

    @Test func humanOutputHasOneLinePerCheckAndASummary() async {
        var host = FakeHost()
        host.readWrite.remove("/dev/vhost-vsock")
        let lines = await host.report().humanReadable.split(separator: "\n")
        #expect(lines.count == 24)
        #expect(lines.contains { $0.hasPrefix("WARN  vhost-vsock") && $0.hasSuffix("— fix: modprobe vhost_vsock") })
        #expect(lines.last == "pods can run: accelerator kvm, agent transport virtio-serial (1 warning)")
    }
}
