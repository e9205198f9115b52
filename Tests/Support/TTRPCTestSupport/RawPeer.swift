import NIOCore
import NIOPosix
import TTRPC

/// A ttrpc peer that sends and receives raw frames, to test how our client and server treat bytes
/// that no well-behaved peer would send.
public final class RawPeer: Sendable {
    private let channel: any Channel
    /// Frames received from the other side, in order.
    public let frames: AsyncStream<TTRPCInboundFrame>

    private init(channel: any Channel, frames: AsyncStream<TTRPCInboundFrame>) {
        self.channel = channel
        self.frames = frames
    }

    /// Connects to a listening socket (to play a client).
    public static func connect(unixSocketPath path: String) async throws -> RawPeer {
        let (stream, continuation) = AsyncStream.makeStream(of: TTRPCInboundFrame.self)
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers(
                        ByteToMessageHandler(RawFrameDecoder()), FrameCollector(continuation))
                }
            }
            .connect(unixDomainSocketPath: path).get()
        return RawPeer(channel: channel, frames: stream)
    }

    /// Listens on `path` and returns the first connection accepted (to play a server).
    public static func acceptOne(unixSocketPath path: String, connected: @Sendable () async throws -> Void) async throws -> RawPeer {
        let (stream, continuation) = AsyncStream.makeStream(of: TTRPCInboundFrame.self)
        let accepted = MultiThreadedEventLoopGroup.singleton.any().makePromise(of: (any Channel).self)
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                accepted.succeed(channel)
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers(
                        ByteToMessageHandler(RawFrameDecoder()), FrameCollector(continuation))
                }
            }
            .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).get()
        try await connected()
        let channel = try await accepted.futureResult.get()
        try await server.close()
        return RawPeer(channel: channel, frames: stream)
    }

    /// Sends bytes exactly as given.
    public func send(_ bytes: ByteBuffer) async throws {
        try await channel.writeAndFlush(bytes)
    }

    /// Sends one frame with the given header fields around `payload`.
    public func send(streamID: UInt32, type: TTRPCMessageType, flags: UInt8 = 0, payload: ByteBuffer) async throws {
        var frame = ByteBuffer()
        frame.writeTTRPCHeader(TTRPCFrameHeader(length: UInt32(payload.readableBytes), streamID: streamID, type: type, flags: flags))
        frame.writeImmutableBuffer(payload)
        try await send(frame)
    }

    public func close() async {
        try? await channel.close()
    }

    public var isActive: Bool { channel.isActive }
}

private struct RawFrameDecoder: NIOSingleStepByteToMessageDecoder {
    typealias InboundOut = TTRPCInboundFrame
    var parser = TTRPCFrameParser()
    mutating func decode(buffer: inout ByteBuffer) throws -> TTRPCInboundFrame? { parser.next(from: &buffer) }
    mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> TTRPCInboundFrame? { parser.next(from: &buffer) }
}

private final class FrameCollector: ChannelInboundHandler, Sendable {
    typealias InboundIn = TTRPCInboundFrame
    private let continuation: AsyncStream<TTRPCInboundFrame>.Continuation
    init(_ continuation: AsyncStream<TTRPCInboundFrame>.Continuation) { self.continuation = continuation }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) { continuation.yield(unwrapInboundIn(data)) }
    func channelInactive(context: ChannelHandlerContext) { continuation.finish() }
}
