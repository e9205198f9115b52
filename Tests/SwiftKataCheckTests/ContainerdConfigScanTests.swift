import Testing

@testable import SwiftKataCheck

@Suite struct ContainerdConfigScanTests {
    typealias Registration = ContainerdRuntimeRegistration

    @Test func versionTwoTable() {
        let text = """
            version = 2
            [plugins]
              [plugins."io.containerd.grpc.v1.cri"]
                restrict_oom_score_adj = true
                [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
                  runtime_type = "io.containerd.runc.v2"
                [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.kata-runtime]
                  runtime_type = "io.containerd.swiftkata.v2"   # swiftkata
                  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.kata-runtime.options]
                    ConfigPath = "/etc/swiftkata/configuration.toml"
            """
        #expect(Registration(scanning: text).isRegistered)
    }

    @Test func otherLayouts() {
        #expect(Registration(scanning: "[plugins.cri.containerd.runtimes.kata-runtime]\nruntime_type = 'io.containerd.swiftkata.v2'\n").isRegistered)
        #expect(
            Registration(
                scanning: "[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.\"kata-runtime\"]\nruntime_type = \"io.containerd.swiftkata.v2\"\n"
            ).isRegistered)
        #expect(
            Registration(
                scanning:
                    "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes]\nkata-runtime = { runtime_type = \"io.containerd.swiftkata.v2\", privileged_without_host_devices = true }\n"
            ).isRegistered)
        #expect(
            Registration(scanning: "[plugins.\"io.containerd.grpc.v1.cri\".containerd]\nruntimes.kata-runtime.runtime_type = \"io.containerd.swiftkata.v2\"\n")
                .isRegistered)
    }

    @Test func withoutTheRuntime() {
        let stock = """
            version = 2
            [plugins]
              [plugins."io.containerd.grpc.v1.cri"]
                [plugins."io.containerd.grpc.v1.cri".cni]
                  bin_dir = "/usr/lib/cni"
            # [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.kata-runtime]
            #   runtime_type = "io.containerd.swiftkata.v2"
            """
        #expect(Registration(scanning: stock).handler == .missing)
        #expect(Registration(scanning: "").handler == .missing)
        // The handler name under a non-CRI table is not a CRI handler.
        #expect(Registration(scanning: "[runtimes.kata-runtime]\nruntime_type = \"io.containerd.swiftkata.v2\"\n").handler == .missing)
    }

    @Test func handlerWithAnotherRuntimeType() {
        let text = "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.kata-runtime]\nruntime_type = \"io.containerd.kata.v2\"\n"
        #expect(Registration(scanning: text).handler == .present(runtimeType: "io.containerd.kata.v2"))
        #expect(!Registration(scanning: text).isRegistered)
        let unset = Registration(scanning: "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.kata-runtime]\n")
        #expect(unset.handler == .present(runtimeType: nil))
    }

    @Test func disabledCRI() {
        let text =
            "disabled_plugins = [\"cri\"]\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.kata-runtime]\nruntime_type = \"io.containerd.swiftkata.v2\"\n"
        #expect(Registration(scanning: text).criDisabled)
        #expect(!Registration(scanning: text).isRegistered)
        #expect(!Registration(scanning: "disabled_plugins = []\n").criDisabled)
    }

    @Test func checkOutcomes() async {
        var host = FakeHost()
        host.files["/etc/containerd/config.toml"] = nil
        let missing = await host.report()
        #expect(missing.check(named: "containerd-runtime")?.status == .warn)
        #expect(missing.check(named: "containerd-runtime")?.fix.hasPrefix("make install") == true)
        #expect(missing.ok)

        host.setText("/etc/containerd/config.toml", "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".cni]\nbin_dir = \"/usr/lib/cni\"\n")
        #expect(await host.report().check(named: "containerd-runtime")?.status == .warn)

        host.setText(
            "/tmp/containerd.toml", "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.kata-runtime]\nruntime_type = \"io.containerd.runc.v2\"\n")
        let wrong = await host.report(CheckOptions(containerdConfigurationPath: "/tmp/containerd.toml"))
        #expect(wrong.check(named: "containerd-runtime")?.status == .fail)
        #expect(wrong.check(named: "containerd-runtime")?.detail.contains("/tmp/containerd.toml") == true)
    }

    @Test func theRunningContainerdsViewWinsOverTheFile() async {
        var host = FakeHost()
        // The file has the handler, but the running containerd was not restarted since.
        host.setText(
            "/etc/containerd/config.toml",
            "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.kata-runtime]\nruntime_type = \"io.containerd.swiftkata.v2\"\n")
        host.cri = .success(CRIRuntimeStatus(conditions: ["RuntimeReady": true], runtimeTypes: ["runc": "io.containerd.runc.v2"]))
        let stale = await host.report().check(named: "containerd-runtime")
        #expect(stale?.status == .warn)
        #expect(stale?.fix.contains("restart containerd") == true)

        host.cri = .success(CRIRuntimeStatus(conditions: [:], runtimeTypes: ["runc": "io.containerd.runc.v2", "kata-runtime": "io.containerd.swiftkata.v2"]))
        let loaded = await host.report().check(named: "containerd-runtime")
        #expect(loaded?.status == .pass)
        #expect(loaded?.detail.contains("running containerd") == true)

        host.cri = .success(CRIRuntimeStatus(conditions: [:], runtimeTypes: ["kata-runtime": "io.containerd.kata.v2"]))
        #expect(await host.report().check(named: "containerd-runtime")?.status == .fail)

        // Not answering: the file decides, and the detail says so.
        host.cri = .failure(HostProbeError("connection refused"))
        let fromFile = await host.report().check(named: "containerd-runtime")
        #expect(fromFile?.status == .pass)
        #expect(fromFile?.detail.contains("read from the file") == true)
    }

    @Test func criStatusRequestAndReplyOnTheWire() throws {
        let request = CRIStatusClient.request()
        #expect(request.starts(with: Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)))
        #expect(CRIStatusClient.integer(31, prefixBits: 4, flags: 0) == [0x0f, 0x10])
        #expect(CRIStatusClient.integer(1337, prefixBits: 5, flags: 0) == [31, 154, 10])  // RFC 7541 C.1.2
        // StatusResponse { status { conditions { type "RuntimeReady" status true } } info { "config": {...} } }
        let condition: [UInt8] = [0x0a, 12] + Array("RuntimeReady".utf8) + [0x10, 0x01]
        let status: [UInt8] = [0x0a, UInt8(condition.count)] + condition
        let json = Array(#"{"containerd":{"runtimes":{"kata-runtime":{"runtimeType":"io.containerd.swiftkata.v2"}}}}"#.utf8)
        let entry: [UInt8] = [0x0a, 6] + Array("config".utf8) + [0x12, UInt8(json.count)] + json
        let reply: [UInt8] = [0x0a, UInt8(status.count)] + status + [0x12, UInt8(entry.count)] + entry
        let decoded = try #require(CRIStatusClient.decodeStatus(reply))
        #expect(decoded.conditions == ["RuntimeReady": true])
        #expect(decoded.runtimeTypes == ["kata-runtime": "io.containerd.swiftkata.v2"])
        #expect(CRIStatusClient.decodeStatus([0x12, 0x40]) == nil)  // cut short
    }

    @Test func aLibvirtThatReprobesAtEveryLookupFailsWithTheFix() async {
        var host = FakeHost()
        #expect(await host.report().check(named: "libvirt-capabilities")?.status == .pass)
        host.capabilitiesStable = .success(false)
        let unstable = await host.report().check(named: "libvirt-capabilities")
        #expect(unstable?.status == .fail)
        #expect(unstable?.fix.contains("kvm-device.sh") == true)
        host.capabilitiesStable = .failure(HostProbeError("no libvirtd"))
        #expect(await host.report().check(named: "libvirt-capabilities")?.status == .warn)
    }
}
