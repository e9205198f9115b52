import Foundation
import SwiftKataCheck
import Testing

/// The real checks on this host, no fakes. Host-specific expectations follow the files actually present,
/// so the test holds on other hosts too.
@Suite struct RealHostTests {
    @Test func realHostChecksRunAndMatchTheHost() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("swiftkata-check-test-\(getpid())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // The guest from `make guest` (the Makefile sets these for tests); without it, all defaults.
        var configuration = ""
        let environment = ProcessInfo.processInfo.environment
        if let bzImage = environment["SWIFTKATA_KERNEL"], let image = environment["SWIFTKATA_IMAGE"] {
            let vmlinux = URL(fileURLWithPath: bzImage).deletingLastPathComponent().appendingPathComponent("vmlinux").path
            let kernel = FileManager.default.fileExists(atPath: vmlinux) ? vmlinux : bzImage
            configuration = "[hypervisor]\nkernel = \"\(kernel)\"\nimage = \"\(image)\"\n"
        }
        let configurationPath = "\(directory)/configuration.toml"
        try configuration.write(toFile: configurationPath, atomically: true, encoding: .utf8)
        let cache = "\(directory)/kvm-probe"

        let started = ContinuousClock.now
        let report = await HostCheck(host: .live(kvmProbeCacheDirectory: cache), options: CheckOptions(configurationPath: configurationPath)).run()
        print(report.humanReadable)
        #expect(ContinuousClock.now - started < .seconds(30))
        #expect(report.checks.count == 23)
        #expect(report.check(named: "configuration")?.status == .pass)
        // This host's libvirt keeps its QEMU capabilities (its QEMU user opens /dev/kvm).
        #expect(report.check(named: "libvirt-capabilities")?.status == .pass, "\(String(describing: report.check(named: "libvirt-capabilities")))")
        #expect(report.checks.allSatisfy { $0.status == .pass ? $0.fix.isEmpty : !$0.fix.isEmpty })
        #expect(report.exitStatus == (report.checks.contains { $0.status == .fail } ? 1 : 0))

        let kvmBoot = try #require(report.check(named: "kvm-boot"))
        #expect(kvmBoot.status == .warn || kvmBoot.status == .pass, "\(kvmBoot)")
        #expect(report.accelerator.rawValue == (kvmBoot.status == .pass ? "kvm" : "tcg"))
        if !configuration.isEmpty && access("/dev/kvm", R_OK | W_OK) == 0 {
            // A guest was really booted under KVM (or QEMU refused), and the result was cached here, not in /var/cache.
            #expect(!kvmBoot.detail.hasPrefix("not probed"))
            #expect(kvmBoot.status == .pass ? kvmBoot.detail.contains("passed") : kvmBoot.detail.contains("did not boot"), "\(kvmBoot.detail)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: cache).count == 1)
        }

        let vsock = report.check(named: "vhost-vsock")
        if access("/dev/vhost-vsock", R_OK | W_OK) == 0 {
            #expect(vsock?.status == .pass && report.transport.rawValue == "vsock")
        } else {
            #expect(vsock?.status == .warn && vsock?.detail == "no /dev/vhost-vsock: agent uses virtio-serial")
            #expect(report.transport.rawValue == "virtio-serial")
        }

        let cpuinfo = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)
        let hasVirtualization =
            cpuinfo.split(separator: "\n").first { $0.hasPrefix("flags") }?
            .split(separator: " ").contains { $0 == "vmx" || $0 == "svm" } ?? false
        #expect(report.check(named: "cpu-virtualization")?.status == (hasVirtualization ? .pass : .warn))
        let cgroupV2 = FileManager.default.fileExists(atPath: "/sys/fs/cgroup/cgroup.controllers")
        #expect(report.check(named: "cgroups")?.status == (cgroupV2 ? .pass : .warn))
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/qemu-system-x86_64") {
            #expect(report.check(named: "qemu")?.status == .pass)
            #expect(report.check(named: "tcg")?.status == .pass)
        }
        if FileManager.default.fileExists(atPath: "/run/libvirt/libvirt-sock") {
            #expect(report.check(named: "libvirt")?.detail.contains("QEMU driver, libvirt") == true, "\(report.check(named: "libvirt")!)")
        }

        _ = try JSONSerialization.jsonObject(with: Data(report.json.utf8))
    }
}
