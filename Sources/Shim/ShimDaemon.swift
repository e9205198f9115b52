import ContainerdAPI
import Dispatch
import Glibc
import Logging
import NIOCore
import NIOPosix
import SwiftKataConfig
import SwiftKataOS
import TTRPC

/// The long-lived shim process of one pod: serves the task API on the listener `start` handed over
/// as fd 3, logs to the bundle's `log` FIFO, and exits after Shutdown (or on SIGTERM/SIGINT), having
/// destroyed its VM.
enum ShimDaemon {
    static func run(_ arguments: ShimArguments) async -> Int32 {
        signal(SIGPIPE, SIG_IGN)
        redirectStderrToLogFIFO()
        // The listener's own path, unlinked at exit: containerd deletes the bundle (and the address
        // file in it) once Shutdown is answered, so it cannot be looked up there by then.
        let ownSocket = UnixSocket.boundPath(of: 3)
        // Runtime options only arrive with Create, so the daemon reads the configuration the same way
        // `delete` and `swiftkata-check` do: $SWIFTKATA_CONFIG or the default file.
        let environment = processEnvironment()
        let (path, mayBeMissing) = Configuration.resolvePath(runtimeOptionPath: nil, environment: environment)
        let configurationResult = Result { () throws(ConfigurationError) in try Configuration.load(path: path, mayBeMissing: mayBeMissing) }
        let debug = arguments.debug || ((try? configurationResult.get())?.runtime.debug ?? false)
        ShimLogHandler.bootstrap(level: debug ? .debug : .info)
        var logger = Logger(label: "swiftkata.shim")
        logger[metadataKey: "id"] = "\(arguments.id)"
        logger[metadataKey: "namespace"] = "\(arguments.namespace)"

        let configuration: Configuration
        switch configurationResult {
        case .success(let loaded): configuration = loaded
        case .failure(let error):
            // Still serve: every Create then fails with this message, which containerd shows the user.
            logger.error("configuration is invalid", metadata: ["error": "\(error)"])
            return await serveBroken(arguments, reason: error.description, ownSocket: ownSocket, logger: logger)
        }

        let eventsAddress = environment["TTRPC_ADDRESS"] ?? "\(arguments.address).ttrpc"
        let publisher = EventPublisher(address: eventsAddress, namespace: arguments.namespace, logger: logger)
        let pod = Pod(
            namespace: arguments.namespace, configuration: configuration, publisher: publisher,
            machines: LibvirtPodMachines(configuration: configuration, logger: logger), filesystem: HostPodFilesystem(),
            logger: logger)
        let exitSignal = ExitSignal()
        let service = TaskService(pod: pod, onShutdown: { exitSignal.fire() })
        let server = TTRPCServer(services: [service.serviceDefinition], logger: logger)
        let listener: TTRPCListener
        do {
            listener = try await server.listen(inheritedDescriptor: 3)
        } catch {
            logger.critical("cannot serve on fd 3", metadata: ["error": "\(error)"])
            return 1
        }
        logger.info("shim daemon serving", metadata: ["pid": "\(getpid())", "config": "\(path)"])

        let signals = [SIGTERM, SIGINT].map { number -> any DispatchSourceSignal in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number)
            source.setEventHandler { exitSignal.fire() }
            source.resume()
            return source
        }
        await exitSignal.wait()
        logger.debug("shim daemon stopping")
        signals.forEach { $0.cancel() }
        // The VM goes first (the Shutdown reply is already on its way), then the listener: while the
        // socket is served, a concurrent `delete` leaves the pod's teardown to this process.
        let started = ContinuousClock.now
        await pod.shutdownVM()
        logger.debug("shutdown: VM destroyed", metadata: ["ms": "\((ContinuousClock.now - started).milliseconds)"])
        await publisher.flush()
        // A pod without a VM tears down at once: let the Shutdown reply reach containerd first.
        if ContinuousClock.now - started < .milliseconds(50) { try? await Task.sleep(for: .milliseconds(50)) }
        // The address goes before the connections: a new shim for a reused id waits for them to
        // close, then binds the same path, which this process must not unlink afterwards.
        if let ownSocket { unlink(ownSocket) }
        await listener.close()
        // A `binary://` logging binary still finishing (its output has ended) must not outlive the shim.
        await BinaryLogger.stopAll(grace: .seconds(2))
        await pod.finishPoolRefill()
        logger.info("shim daemon exiting")
        return 0
    }

    /// Serves a task API whose every call fails with `reason` (a bad configuration), until SIGTERM.
    private static func serveBroken(_ arguments: ShimArguments, reason: String, ownSocket: String?, logger: Logger) async -> Int32 {
        let exitSignal = ExitSignal()
        var service = TTRPCServiceDefinition(name: "containerd.task.v2.Task")
        for method in Containerd_Task_V2_TaskWire.methodNames where method != "Shutdown" {
            service.addRawMethod(method) { _, _ in throw ShimError.failedPrecondition("swiftkata configuration: \(reason)") }
        }
        service.addRawMethod("Shutdown") { _, _ in
            exitSignal.fire()
            return ByteBuffer()
        }
        guard let listener = try? await TTRPCServer(services: [service], logger: logger).listen(inheritedDescriptor: 3) else { return 1 }
        await exitSignal.wait()
        try? await Task.sleep(for: .milliseconds(50))
        if let ownSocket { unlink(ownSocket) }
        await listener.close()
        return 1
    }

    /// containerd created `log` (a FIFO) in the bundle and reads it; stderr goes there.
    private static func redirectStderrToLogFIFO() {
        let fd = open("log", O_WRONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { return }
        // Writes block when containerd falls behind rather than losing lines.
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        dup2(fd, STDERR_FILENO)
        close(fd)
    }
}

/// A one-shot "time to exit" signal that can be fired from any thread.
final class ExitSignal: Sendable {
    private let stream: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation

    init() {
        (stream, continuation) = AsyncStream.makeStream(of: Void.self)
    }

    func fire() { continuation.yield() }

    func wait() async {
        for await _ in stream { return }
    }
}

func processEnvironment() -> [String: String] {
    var environment: [String: String] = [:]
    var pointer = environ
    while let entry = pointer.pointee {
        let text = String(cString: entry)
        if let equals = text.firstIndex(of: "=") {
            environment[String(text[..<equals])] = String(text[text.index(after: equals)...])
        }
        pointer += 1
    }
    return environment
}
