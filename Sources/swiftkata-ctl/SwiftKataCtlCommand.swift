import ArgumentParser
import Glibc
import Logging
import SwiftKataConfig
import SwiftKataCtl

/// `swiftkata-ctl`: operators' view of this node's swiftkata pods (root only: it talks to each
/// pod's shim on a root-only socket under the state directory).
@main
struct SwiftKataCtl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swiftkata-ctl",
        abstract: "Operates swiftkata pods on this node: metrics, the debug console, the pod list.",
        discussion: "For the host's readiness and a bug report's environment, see swiftkata-check (and swiftkata-check --env).",
        subcommands: [Pods.self, Metrics.self, ServeMetrics.self, Console.self])
}

/// Options every subcommand takes: which configuration names the state directory.
struct ConfigurationOption: ParsableArguments {
    @Option(name: .long, help: "swiftkata's configuration file (default: $SWIFTKATA_CONFIG, then /etc/swiftkata/configuration.toml).")
    var config: String?

    func stateDirectory() throws -> String {
        var environment: [String: String] = [:]
        if let value = getenv("SWIFTKATA_CONFIG") { environment["SWIFTKATA_CONFIG"] = String(cString: value) }
        let (path, mayBeMissing) = config.map { ($0, false) } ?? Configuration.resolvePath(runtimeOptionPath: nil, environment: environment)
        do { return try Configuration.load(path: path, mayBeMissing: mayBeMissing).runtime.stateDirectory } catch {
            throw ValidationError("\(error)")
        }
    }
}

struct Pods: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Lists the running pods: id, namespace, VM, QEMU pid, boot time.")
    @OptionGroup var options: ConfigurationOption

    func run() async throws {
        let (pods, unreachable) = await PodSockets(stateDirectory: try options.stateDirectory()).describeAll(askGuest: false)
        print("POD ID                                                            NAMESPACE   ACCEL  TRANSPORT      QEMU PID  BOOT MS  CONTAINERS")
        for pod in pods {
            let id = pod.podID.padding(toLength: 65, withPad: " ", startingAt: 0)
            let namespace = pod.namespace.padding(toLength: 11, withPad: " ", startingAt: 0)
            print(
                "\(id) \(namespace) \(pod.accelerator.padding(toLength: 6, withPad: " ", startingAt: 0)) "
                    + "\(pod.transport.padding(toLength: 14, withPad: " ", startingAt: 0)) \(String(pod.qemuPid).padding(toLength: 9, withPad: " ", startingAt: 0)) "
                    + "\(String(pod.boot.totalMs).padding(toLength: 8, withPad: " ", startingAt: 0)) \(pod.containers)")
        }
        if unreachable > 0 { printError("\(unreachable) pod shim(s) did not answer") }
    }
}

struct Metrics: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Prints one scrape of the node's metrics (Prometheus text format).")
    @OptionGroup var options: ConfigurationOption

    func run() async throws {
        let snapshot = await NodeSnapshot.gather(stateDirectory: try options.stateDirectory())
        print(MetricsExposition.render(snapshot), terminator: "")
    }
}

struct ServeMetrics: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve-metrics",
        abstract: "Serves the node's metrics at http://<listen>/metrics for Prometheus; each scrape asks every pod's shim.")
    @OptionGroup var options: ConfigurationOption
    @Option(name: .long, help: "host:port to listen on (port 0 picks a free one, printed on stdout).")
    var listen = "127.0.0.1:9464"

    func run() async throws {
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]), (0...65535).contains(port) else {
            throw ValidationError("--listen \(listen): expected host:port")
        }
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        let server = MetricsServer(
            host: String(listen[..<colon]), port: port, stateDirectory: try options.stateDirectory(), logger: Logger(label: "swiftkata.metrics"))
        try await server.run(ready: { port in
            print("listening on port \(port)")
            fflush(nil)
        })
    }
}

struct Console: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Opens a shell in a pod VM's own root (not in a container), for operators.",
        discussion: "Needs agent.debug_console = true in configuration.toml when the pod's VM booted. Exits with the shell's status.")
    @OptionGroup var options: ConfigurationOption
    @Argument(help: "The pod's id (the sandbox id crictl shows), or a unique prefix of it.")
    var pod: String

    func run() async throws {
        do {
            let (socket, _) = try await PodSockets(stateDirectory: try options.stateDirectory()).find(pod)
            let status = try await DebugConsoleClient.run(socket: socket)
            throw ExitCode(status)
        } catch let error as CtlError {
            printError("swiftkata-ctl console: \(error)")
            throw ExitCode(1)
        }
    }
}

func printError(_ text: String) {
    let bytes = Array((text + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}
