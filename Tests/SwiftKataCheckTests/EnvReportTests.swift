import Foundation
import SwiftKataCheck
import Testing

/// `swiftkata-check --env` on a fake host: versions, the configuration with the source of each
/// value, and the decisions of the checks.
@Suite struct EnvReportTests {
    @Test func reportsVersionsSourcesAndDecisions() async throws {
        var host = FakeHost()
        host.setText(FakeHost.configurationPath, "[hypervisor]\nvcpus = 2\n\n[pool]\nsize = 1\n")
        host.files["/usr/share/swiftkata/vmlinux"] = Array("\u{7f}ELF....Linux version 6.1.192-swiftkata (root@build) #1 SMP".utf8)
        host.commands["/usr/bin/containerd --version"] = CommandOutput(status: 0, output: "containerd github.com/containerd/containerd 1.6.20~ds1\n")
        let options = CheckOptions()
        let report = await HostCheck(host: host.environmentValue, options: options).run()
        let env = EnvReport.gather(host: host.environmentValue, options: options, report: report)

        let text = env.text
        #expect(text.contains("guest kernel = 6.1.192-swiftkata (/usr/share/swiftkata/vmlinux)"), "\(text)")
        #expect(text.contains("qemu = QEMU emulator version 7.2.0"))
        #expect(text.contains("libvirt = libvirt 9.0.0, QEMU 7.2.0"))
        #expect(text.contains("containerd = containerd github.com/containerd/containerd 1.6.20~ds1"))
        #expect(text.contains("hypervisor.vcpus = 2  # /etc/swiftkata/configuration.toml:2"))
        #expect(text.contains("pool.size = 1  # /etc/swiftkata/configuration.toml:5"))
        #expect(text.contains("hypervisor.memory_mib = 256  # default"))
        #expect(text.contains("accelerator = kvm (KVM boot probe passed"))

        let json = try #require(try JSONSerialization.jsonObject(with: Data(env.json.utf8)) as? [String: Any])
        let configuration = try #require(json["configuration"] as? [String: [String: String]])
        #expect(configuration["hypervisor.vcpus"] == ["value": "2", "source": "/etc/swiftkata/configuration.toml:2"])
        #expect((json["components"] as? [String: String])?["swiftkata"] == SwiftKataVersion.string)
    }
}
