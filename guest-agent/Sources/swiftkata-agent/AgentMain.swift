import AgentAPI
import CGuestSys
import Glibc
import GuestAgentCore
import Logging
import NIOCore
import NIOPosix
import TTRPC

/// swiftkata-agent: PID 1 in the pod's VM. Sets up the guest, then serves the agent API over ttrpc
/// on vsock port 1024 or on the virtio-serial port `io.swiftkata.agent`.
@main
struct AgentMain {
    static func main() async {
        // Before /proc is mounted: no CommandLine here (the runtime may read /proc/self/cmdline).
        if getpid() == 1 && getenv(rootSwitchedVariable) == nil {
            switchRootToTmpfs()
        }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .info
            return handler
        }
        let logger = Logger(label: "swiftkata-agent")
        // Swift tasks run on Swift's default executor, as in the shim. (NIO's takeover of it finds
        // the executor hook with dlsym(), which the release link hides: `--no-export-dynamic`, and
        // `--exclude-libs ALL` for the static runtime. A build that exported it started pooled pods
        // no faster, within this machine's noise: 210 vs 213 ms median, 8 interleaved runs each.)
        if getpid() == 1 {
            do {
                try GuestSetup.mountEssentials()
            } catch {
                // Without /proc and /dev the agent cannot run containers; keep serving so the host
                // sees the reason in Health and the console instead of a kernel panic.
                logger.critical("guest setup failed", metadata: ["error": "\(error)"])
            }
        }
        let reaper = Reaper()
        reaper.start()

        let oomWatcher = OOMWatcher()
        oomWatcher.start()
        let containers = ContainerManager(reaper: reaper, oomWatcher: oomWatcher, sharedRoot: AgentProtocol.guestSharedRoot, logger: logger)
        let service = AgentService(reaper: reaper, containers: containers, logger: logger)
        let server = TTRPCServer(services: [service.serviceDefinition], logger: logger)
        // Work of every pod's first calls, done ahead while the agent waits for the host.
        WarmUpThread.start(logger: logger)
        await AgentTransport.serveForever(server: server, logger: logger)
    }

    /// Set in the environment of the re-executed agent once its root is a tmpfs.
    static let rootSwitchedVariable = "SWIFTKATA_ROOT_SWITCHED"

    /// The initramfs cannot be pivoted away from, so containers could only chroot out of it. Moving
    /// its files into a tmpfs root (then re-executing from there) lets every container pivot_root.
    static func switchRootToTmpfs() {
        var message = [CChar](repeating: 0, count: 512)
        switch guest_switch_root_to_tmpfs(&message, message.count) {
        case 1:
            setenv(rootSwitchedVariable, "1", 1)
            var argv: [UnsafeMutablePointer<CChar>?] = [strdup("/init"), nil]
            execv("/init", &argv)
            consoleLine("swiftkata-agent: re-exec after switching root failed: \(String(cString: strerror(errno)))")
        case 0:
            return
        default:
            let text = String(cMessage: message)
            consoleLine("swiftkata-agent: staying on the initramfs root: \(text)")
        }
    }
}
