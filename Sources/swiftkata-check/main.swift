import ArgumentParser
import Glibc
import SwiftKataCheck

/// `swiftkata-check`: can this host run swiftkata pods, and how?
struct SwiftKataCheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swiftkata-check",
        abstract: "Checks whether this host can run swiftkata pods.",
        discussion: "Each check prints PASS, WARN or FAIL with what it found and, unless it passed, a one-line fix. "
            + "Exits 0 when pods can run (also on TCG, with warnings), 1 when a check failed.")

    @Option(name: .long, help: "swiftkata's configuration file (default: $SWIFTKATA_CONFIG, then /etc/swiftkata/configuration.toml).")
    var config: String?

    @Option(name: .customLong("containerd-config"), help: "containerd's configuration file.")
    var containerdConfig = "/etc/containerd/config.toml"

    @Option(name: .customLong("containerd-socket"), help: "containerd's socket.")
    var containerdSocket = "/run/containerd/containerd.sock"

    @Flag(name: [.customLong("reprobe"), .customLong("no-cache")], help: "Forget the cached KVM boot probe of this host boot and boot a guest again.")
    var reprobe = false

    @Flag(name: .long, help: "Print one JSON document instead of lines.")
    var json = false

    @Flag(
        name: .long,
        help:
            "Print the environment report for a bug report instead: component versions, the effective configuration with the source of each value, paths and decisions."
    )
    var env = false

    /// Runs the checks, prints the report and returns the exit status.
    func check() async -> Int32 {
        let options = CheckOptions(
            configurationPath: config, containerdConfigurationPath: containerdConfig,
            containerdSocketPath: containerdSocket, freshKVMProbe: reprobe)
        let host = HostEnvironment.live()
        let report = await HostCheck(host: host, options: options).run()
        if env {
            let environment = EnvReport.gather(host: host, options: options, report: report)
            print(json ? environment.json : environment.text)
            return 0
        }
        print(json ? report.json : report.humanReadable)
        return report.exitStatus
    }
}

// Parsed here and run from top-level code, so the checks run under Swift concurrency directly.
let command = SwiftKataCheckCommand.parseOrExit()
exit(await command.check())
