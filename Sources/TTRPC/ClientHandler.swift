import Logging
import NIOCore

/// A call on its way out: the envelope, who waits for its reply, and when to give up.
struct TTRPCOutboundCall {
    var request: TTRPCRequest
    var reply: UnsafeContinuation<ByteBuffer, any Error>
    var deadline: NIODeadline?
    /// Names the call for a cancellation (`TTRPCClientHandler.cancel(token:)`).
    var token: UInt64
}

/// The client side of one connection: assigns stream ids, matches replies to calls, enforces
/// deadlines, and fails every pending call when the connection goes away.
///
/// Replies come from a peer that may be hostile (the guest agent): unknown stream ids are dropped,
/// undecodable replies fail only their own call, and oversized replies are skipped unbuffered.
/// Calls come straight from `TTRPCClient` on the channel's event loop (`send`), not through the
/// pipeline: no promise and no type-erased message per call.
final class TTRPCClientHandler: ChannelInboundHandler {
    typealias InboundIn = TTRPCInboundFrame
    typealias OutboundOut = ByteBuffer

    private struct Pending {
        var reply: UnsafeContinuation<ByteBuffer, any Error>
        var timer: Scheduled<Void>?
        var token: UInt64
    }

    private var pending: [UInt32: Pending] = [:]
    private var nextStreamID: UInt32 = 1
    private var closedError: TTRPCError?
    private var context: ChannelHandlerContext?
    private let logger: Logger

    init(logger: Logger) { self.logger = logger }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        failAll(.closed)
        self.context = nil
    }

    /// Sends a call; its continuation is resumed exactly once, with the reply or an error.
    /// Runs on the channel's event loop.
    func send(_ call: TTRPCOutboundCall) {
        if let closedError { return call.reply.resume(throwing: closedError) }
        guard let context else { return call.reply.resume(throwing: TTRPCError.closed) }
        guard nextStreamID < UInt32.max - 1 else {
            return call.reply.resume(throwing: TTRPCError(.resourceExhausted, "ttrpc: stream ids exhausted on this connection"))
        }
        var request = call.request
        if let deadline = call.deadline {
            let remaining = deadline - .now()
            guard remaining > .zero else {
                return call.reply.resume(throwing: TTRPCError(.deadlineExceeded, "context deadline exceeded"))
            }
            request.timeoutNanos = remaining.nanoseconds
        }
        var frame = context.channel.allocator.buffer(capacity: TTRPCWire.headerSize + request.encodedSizeEstimate)
        let length = frame.writeTTRPCFrame(streamID: nextStreamID, type: .request) { request.encode(into: &$0) }
        guard length <= TTRPCWire.maxPayloadSize else {
            return call.reply.resume(
                throwing: TTRPCError(
                    .resourceExhausted, "message length \(length) exceed maximum message size of \(TTRPCWire.maxPayloadSize)"))
        }
        let streamID = nextStreamID
        nextStreamID += 2
        var timer: Scheduled<Void>?
        if let deadline = call.deadline {
            let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
            timer = context.eventLoop.scheduleTask(deadline: deadline) {
                loopBound.value.complete(streamID, .failure(TTRPCError(.deadlineExceeded, "context deadline exceeded")))
            }
        }
        pending[streamID] = Pending(reply: call.reply, timer: timer, token: call.token)
        // Flushed at once, even with other calls pending: the peer starts on this call while the
        // next ones are encoded (holding frames back for one writev measured slower for small calls).
        // No promise per write: a write that fails closes the channel, and `channelInactive` fails
        // every pending call, this one included.
        context.writeAndFlush(NIOAny(frame), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .oversized(let header):
            guard header.type == .response else { return }
            complete(
                header.streamID,
                .failure(
                    TTRPCError(
                        .resourceExhausted, "message length \(header.length) exceed maximum message size of \(TTRPCWire.maxPayloadSize)")))
        case .frame(let header, let payload):
            guard header.type == .response else {
                logger.debug("ttrpc client ignored a frame", metadata: ["type": "\(header.type)", "stream": "\(header.streamID)"])
                return
            }
            guard pending[header.streamID] != nil else { return }  // late reply after a deadline, or bogus id
            do {
                let response = try TTRPCResponse(decoding: payload)
                if let status = response.status {
                    complete(header.streamID, .failure(status))
                } else {
                    complete(header.streamID, .success(response.payload))
                }
            } catch {
                complete(header.streamID, .failure(TTRPCError(.dataLoss, "ttrpc: malformed response: \(error)")))
            }
        }
    }

    private func complete(_ streamID: UInt32, _ result: Result<ByteBuffer, TTRPCError>) {
        guard let call = pending.removeValue(forKey: streamID) else { return }
        call.timer?.cancel()
        call.reply.resume(with: result.mapError { $0 as any Error })
    }

    /// Fails the call named `token` (its caller's task was cancelled), if it still waits.
    func cancel(token: UInt64) {
        guard let streamID = pending.first(where: { $0.value.token == token })?.key else { return }
        complete(streamID, .failure(TTRPCError(.canceled, "context canceled")))
    }

    private func failAll(_ error: TTRPCError) {
        if closedError == nil { closedError = error }
        let calls = pending
        pending.removeAll()
        for call in calls.values {
            call.timer?.cancel()
            call.reply.resume(throwing: error)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(.closed)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("ttrpc client connection error, closing", metadata: ["error": "\(error)"])
        failAll(.closed)
        context.close(promise: nil)
    }
}
