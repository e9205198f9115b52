import SwiftKataCheck
import Testing

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
}
