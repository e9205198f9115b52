import Logging
import NIOCore

/// A call on its way out: the envelope, where its reply goes, and when to give up.
struct TTRPCOutboundCall {
    var request: TTRPCRequest
    var promise: EventLoopPromise<ByteBuffer>
    var deadline: NIODeadline?
}

/// The client side of one connection: assigns stream ids, matches replies to calls, enforces
/// deadlines, and fails every pending call when the connection goes away.
///
/// Replies come from a peer that may be hostile (the guest agent): unknown stream ids are dropped,
/// undecodable replies fail only their own call, and oversized replies are skipped unbuffered.
final class TTRPCClientHandler: ChannelDuplexHandler {
    typealias InboundIn = TTRPCInboundFrame
    typealias OutboundIn = TTRPCOutboundCall
    typealias OutboundOut = ByteBuffer

    private struct Pending {
        var promise: EventLoopPromise<ByteBuffer>
        var timer: Scheduled<Void>?
    }

    private var pending: [UInt32: Pending] = [:]
    private var nextStreamID: UInt32 = 1
    private var closedError: TTRPCError?
    private let flusher = FlushCoalescer()
    private let logger: Logger

    init(logger: Logger) { self.logger = logger }

    func write(context: ChannelHandlerContext, data: NIOAny, promise writePromise: EventLoopPromise<Void>?) {
        let call = unwrapOutboundIn(data)
        writePromise?.succeed()
        if let closedError { return call.promise.fail(closedError) }
        guard nextStreamID < UInt32.max - 1 else {
            return call.promise.fail(TTRPCError(.resourceExhausted, "ttrpc: stream ids exhausted on this connection"))
        }
        var request = call.request
        if let deadline = call.deadline {
            let remaining = deadline - .now()
            guard remaining > .zero else {
                return call.promise.fail(TTRPCError(.deadlineExceeded, "context deadline exceeded"))
            }
            request.timeoutNanos = remaining.nanoseconds
        }
        var frame = context.channel.allocator.buffer(capacity: TTRPCWire.headerSize + request.encodedSizeEstimate)
        let length = frame.writeTTRPCFrame(streamID: nextStreamID, type: .request) { request.encode(into: &$0) }
        guard length <= TTRPCWire.maxPayloadSize else {
            return call.promise.fail(
                TTRPCError(
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
        pending[streamID] = Pending(promise: call.promise, timer: timer)
        let written = context.eventLoop.makePromise(of: Void.self)
        flusher.write(frame, context: context, promise: written, othersPending: pending.count > 1)
        written.futureResult.whenFailure { [loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)] error in
            loopBound.value.complete(streamID, .failure(TTRPCError(.unavailable, "ttrpc: write failed: \(error)")))
        }
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
        call.promise.completeWith(result.mapError { $0 as any Error })
    }

    /// Fails the call whose reply would complete `future` (the caller's task was cancelled).
    func cancel(_ future: EventLoopFuture<ByteBuffer>) {
        guard let streamID = pending.first(where: { $0.value.promise.futureResult === future })?.key else { return }
        complete(streamID, .failure(TTRPCError(.canceled, "context canceled")))
    }

    private func failAll(_ error: TTRPCError) {
        if closedError == nil { closedError = error }
        let calls = pending
        pending.removeAll()
        for call in calls.values {
            call.timer?.cancel()
            call.promise.fail(error)
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
