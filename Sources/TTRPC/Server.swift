import Logging
import NIOCore
import NIOPosix

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A ttrpc server: a set of services served on listeners or on already-connected streams.
public final class TTRPCServer: Sendable {
    private let router: TTRPCRequestRouter
    private let group: any EventLoopGroup
    private let logger: Logger
    private let maxConcurrentCallsPerConnection: Int

    public init(
        services: [TTRPCServiceDefinition],
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        maxConcurrentCallsPerConnection: Int = 1024,
        logger: Logger = Logger(label: "ttrpc.server")
    ) {
        self.router = TTRPCRequestRouter(services: services)
        self.group = group
        self.maxConcurrentCallsPerConnection = maxConcurrentCallsPerConnection
        self.logger = logger
    }

    /// Installs the ttrpc codec and dispatcher on a connection's pipeline.
    private func configure(_ channel: any Channel) -> EventLoopFuture<Void> {
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandlers(
                ByteToMessageHandler(TTRPCFrameDecoder(maxPayloadSize: TTRPCWire.maxPayloadSize)),
                TTRPCServerHandler(router: router, maxConcurrentCalls: maxConcurrentCallsPerConnection, logger: logger))
        }
    }

    private func serverBootstrap() -> ServerBootstrap {
        ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 128)
            .childChannelInitializer { [self] channel in configure(channel) }
    }

    /// Listens on a unix socket at `path`, made accessible to its owner only (0600).
    /// With `replacingExisting`, a stale socket file at `path` is removed first.
    public func listen(unixSocketPath path: String, replacingExisting: Bool = false) async throws -> TTRPCListener {
        let channel = try await serverBootstrap()
            .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: replacingExisting).get()
        guard chmod(path, 0o600) == 0 else {
            let error = errno
            try? await channel.close()
            throw TTRPCError(.internal, "chmod 0600 \(path): \(String(cString: strerror(error)))")
        }
        return TTRPCListener(channel: channel, socketPath: path)
    }

    /// Serves on a listening socket inherited from the parent process (the shim daemon's fd 3).
    public func listen(inheritedDescriptor fd: CInt) async throws -> TTRPCListener {
        let channel = try await serverBootstrap().withBoundSocket(fd).get()
        return TTRPCListener(channel: channel, socketPath: nil)
    }

    /// Serves on an already-connected socket (for example an accepted vsock connection).
    public func serve(connectedSocket fd: CInt) async throws -> TTRPCConnection {
        let channel = try await ClientBootstrap(group: group)
            .channelInitializer { [self] channel in configure(channel) }
            .withConnectedSocket(fd).get()
        return TTRPCConnection(channel: channel)
    }

    /// Serves one connection over two descriptors that are not sockets: requests are read from
    /// `input`, replies written to `output` (the agent's relay pipe and its virtio-serial port). Takes
    /// ownership of both.
    public func serve(inputDescriptor input: CInt, outputDescriptor output: CInt) async throws -> TTRPCConnection {
        let channel = try await NIOPipeBootstrap(group: group)
            .channelInitializer { [self] channel in configure(channel) }
            .takingOwnershipOfDescriptors(input: input, output: output).get()
        return TTRPCConnection(channel: channel)
    }
}

/// A listening ttrpc socket.
public struct TTRPCListener: Sendable {
    let channel: any Channel
    /// The socket file, when listening on a path.
    public let socketPath: String?

    /// Stops accepting connections and removes the socket file. Open connections stay up.
    public func close() async {
        try? await channel.close()
        if let socketPath { unlink(socketPath) }
    }

    /// Completes when the listener closes.
    public var closeFuture: EventLoopFuture<Void> { channel.closeFuture }
}

/// One ttrpc connection, served or used as a client.
public struct TTRPCConnection: Sendable {
    let channel: any Channel

    public func close() async {
        try? await channel.close()
    }

    /// Completes when the peer hangs up or the connection is closed.
    public var closeFuture: EventLoopFuture<Void> { channel.closeFuture }
}
