import Logging
import NIOCore
import NIOPosix
import SwiftProtobuf
import Synchronization

/// Told of every finished call: its method, how long it took, and whether it failed.
public typealias TTRPCCallObserver = @Sendable (_ method: String, _ duration: Duration, _ failed: Bool) -> Void

/// A ttrpc client on one connection. Calls may run concurrently; each has its own stream id.
public final class TTRPCClient: Sendable {
    private let channel: any Channel
    private let handler: NIOLoopBound<TTRPCClientHandler>
    private let observer = Mutex<TTRPCCallObserver?>(nil)
    private let nextToken = Atomic<UInt64>(0)

    private init(channel: any Channel, handler: NIOLoopBound<TTRPCClientHandler>) {
        self.channel = channel
        self.handler = handler
    }

    /// Dials a unix socket.
    public static func connect(
        unixSocketPath path: String,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "ttrpc.client")
    ) async throws -> TTRPCClient {
        let channel = try await bootstrap(group, logger).connect(unixDomainSocketPath: path).get()
        return try await wrap(channel)
    }

    /// Uses an already-connected socket (for example a vsock connection). Takes ownership of `fd`.
    public static func connect(
        connectedSocket fd: CInt,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "ttrpc.client")
    ) async throws -> TTRPCClient {
        let channel = try await bootstrap(group, logger).withConnectedSocket(fd).get()
        return try await wrap(channel)
    }

    /// Uses a stream that is not a socket, such as a character device. Takes ownership of `fd`.
    public static func connect(
        streamDescriptor fd: CInt,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "ttrpc.client")
    ) async throws -> TTRPCClient {
        let channel = try await NIOPipeBootstrap(group: group)
            .channelInitializer { channel in install(on: channel, logger: logger) }
            .takingOwnershipOfDescriptor(inputOutput: fd).get()
        return try await wrap(channel)
    }

    private static func bootstrap(_ group: any EventLoopGroup, _ logger: Logger) -> ClientBootstrap {
        ClientBootstrap(group: group).channelInitializer { channel in install(on: channel, logger: logger) }
    }

    private static func install(on channel: any Channel, logger: Logger) -> EventLoopFuture<Void> {
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandlers(
                ByteToMessageHandler(TTRPCFrameDecoder(maxPayloadSize: TTRPCWire.maxPayloadSize)),
                TTRPCClientHandler(logger: logger))
        }
    }

    private static func wrap(_ channel: any Channel) async throws -> TTRPCClient {
        let handler = try await channel.eventLoop.submit {
            NIOLoopBound(try channel.pipeline.syncOperations.handler(type: TTRPCClientHandler.self), eventLoop: channel.eventLoop)
        }.get()
        return TTRPCClient(channel: channel, handler: handler)
    }

    /// Reports every call that finishes from now on to `observer` (one observer; a later one replaces it).
    public func observeCalls(_ observer: @escaping TTRPCCallObserver) {
        self.observer.withLock { $0 = observer }
    }

    /// Calls `service`.`method` with an encoded request and returns the encoded reply.
    /// - Parameter timeout: sent to the server as `timeout_nano`; the call fails with
    ///   DeadlineExceeded when no reply arrived in time.
    public func call(
        service: String, method: String, payload: ByteBuffer,
        metadata: TTRPCMetadata = [:], timeout: Duration? = nil
    ) async throws -> ByteBuffer {
        let request = TTRPCRequest(service: service, method: method, payload: payload, metadata: metadata)
        let deadline = timeout.map { NIODeadline.now() + TimeAmount($0) }
        guard let observer = self.observer.withLock({ $0 }) else { return try await send(request, deadline: deadline) }
        let started = ContinuousClock.now
        do {
            let reply = try await send(request, deadline: deadline)
            observer(method, ContinuousClock.now - started, false)
            return reply
        } catch {
            observer(method, ContinuousClock.now - started, true)
            throw error
        }
    }

    /// Hands a call to the connection's handler on its event loop and waits for the reply; a
    /// cancelled task fails its call with `Canceled`.
    private func send(_ request: TTRPCRequest, deadline: NIODeadline?) async throws -> ByteBuffer {
        let token = nextToken.add(1, ordering: .relaxed).newValue
        return try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (reply: UnsafeContinuation<ByteBuffer, any Error>) in
                let call = TTRPCOutboundCall(request: request, reply: reply, deadline: deadline, token: token)
                if Task.isCancelled { return reply.resume(throwing: TTRPCError(.canceled, "context canceled")) }
                if channel.eventLoop.inEventLoop {
                    handler.value.send(call)
                } else {
                    channel.eventLoop.execute { [handler] in handler.value.send(call) }
                }
            }
        } onCancel: { [handler, channel] in
            channel.eventLoop.execute { handler.value.cancel(token: token) }
        }
    }

    /// Calls a method with typed protobuf messages.
    public func call<Request: Message, Response: Message>(
        service: String, method: String, request: Request, responseType: Response.Type = Response.self,
        metadata: TTRPCMetadata = [:], timeout: Duration? = nil
    ) async throws -> Response {
        let payload = try request.serializedBuffer()
        let reply = try await call(service: service, method: method, payload: payload, metadata: metadata, timeout: timeout)
        do {
            return try Response(serializedBuffer: reply)
        } catch {
            throw TTRPCError(.dataLoss, "\(service).\(method): reply does not decode: \(error)")
        }
    }

    /// Closes the connection; pending calls fail with `ttrpc: closed`.
    public func close() async {
        try? await channel.close()
    }

    /// Completes when the connection is gone.
    public var closeFuture: EventLoopFuture<Void> { channel.closeFuture }

    /// Whether the connection is still open.
    public var isActive: Bool { channel.isActive }
}

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
