import Glibc
import AgentAPI
import Logging
import NIOCore
import NIOPosix
import TTRPC

/// swiftkata-agent: PID 1 in the pod's VM. Sets up the guest, then serves the agent API over ttrpc
/// on vsock port 1024 or on the virtio-serial port `io.swiftkata.agent`.
@main
struct AgentMain {
    static func main() async {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .info
            return handler
        }
        let logger = Logger(label: "swiftkata-agent")
        _ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()

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
        let containers = ContainerManager(reaper: reaper, oomWatcher: oomWatcher, sharedRoot: "/run/swiftkata/shared", logger: logger)
        let service = AgentService(reaper: reaper, containers: containers, logger: logger)
        let server = TTRPCServer(services: [service.serviceDefinition], logger: logger)
        await AgentTransport.serveForever(server: server, logger: logger)
    }
}
