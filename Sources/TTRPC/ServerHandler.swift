import Logging
import NIOCore

/// Serves ttrpc requests on one connection.
///
/// Every request runs in its own task, so a parked call (containerd's `Wait`) never blocks the others;
/// replies go out in completion order on the request's stream id. All state lives on the channel's
/// event loop.
final class TTRPCServerHandler: ChannelInboundHandler {
    typealias InboundIn = TTRPCInboundFrame
    typealias OutboundOut = ByteBuffer

    private let router: TTRPCRequestRouter
    private let maxConcurrentCalls: Int
    private let logger: Logger
    private var inflight: [UInt32: Call] = [:]
    private let flusher = FlushCoalescer()
    /// True from a read's first frame to its `channelReadComplete`: replies written meanwhile
    /// (handlers that answered inline) go out together in one flush at its end.
    private var inReadBurst = false
    private var flushAfterRead = false

    /// A call being served: `starting` while its handler runs inline, before its task is known.
    private enum Call {
        case starting
        case running(Task<Void, Never>)

        func cancel() {
            if case .running(let task) = self { task.cancel() }
        }
    }

    init(router: TTRPCRequestRouter, maxConcurrentCalls: Int, logger: Logger) {
        self.router = router
        self.maxConcurrentCalls = maxConcurrentCalls
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        inReadBurst = true
        switch unwrapInboundIn(data) {
        case .oversized(let header):
            guard header.type == .request else { return }
            reply(
                context, streamID: header.streamID,
                .failure(
                    TTRPCError(
                        .resourceExhausted,
                        "message length \(header.length) exceed maximum message size of \(TTRPCWire.maxPayloadSize)")))
        case .frame(let header, let payload):
            // Like ttrpc 1.2, frames other than requests (data, stray responses) are ignored.
            guard header.type == .request else { return }
            handleRequest(context, streamID: header.streamID, payload: payload)
        }
    }

    private func handleRequest(_ context: ChannelHandlerContext, streamID: UInt32, payload: ByteBuffer) {
        let method: TTRPCMethodHandler
        let argument: ByteBuffer
        let callContext: TTRPCCallContext
        switch router.route(streamID: streamID, payload: payload) {
        case .reject(let error):
            return reply(context, streamID: streamID, .failure(error))
        case .call(let handler, let payload, let context):
            (method, argument, callContext) = (handler, payload, context)
        }
        guard inflight[streamID] == nil else {
            return reply(context, streamID: streamID, .failure(TTRPCError(.invalidArgument, "stream \(streamID) is already in use")))
        }
        guard inflight.count < maxConcurrentCalls else {
            return reply(
                context, streamID: streamID,
                .failure(
                    TTRPCError(
                        .resourceExhausted, "too many concurrent calls on this connection (limit \(maxConcurrentCalls))")))
        }
        let eventLoop = context.eventLoop
        let loopBound = NIOLoopBound((self, context), eventLoop: eventLoop)
        // The handler starts right here, on the event loop, and runs until it first suspends: a
        // handler that answers without waiting (Health, an echo) replies within this read, with no
        // job queued and no hop to another thread and back. What follows a suspension runs on the
        // task's executor, as in any task: handlers that call into actors leave this loop there.
        inflight[streamID] = .starting
        let task = Task.immediate {
            let result: Result<TTRPCReplyPayload, any Error>
            do {
                result = .success(try await method(argument, callContext))
            } catch {
                result = .failure(error)
            }
            if eventLoop.inEventLoop {
                let (handler, context) = loopBound.value
                handler.finish(context, streamID: streamID, result)
            } else {
                eventLoop.execute {
                    let (handler, context) = loopBound.value
                    handler.finish(context, streamID: streamID, result)
                }
            }
        }
        // Already answered when the handler did not suspend.
        guard inflight[streamID] != nil else { return }
        inflight[streamID] = .running(task)
        if let deadline = callContext.deadline {
            eventLoop.scheduleTask(deadline: deadline) {
                let (handler, context) = loopBound.value
                guard let call = handler.inflight.removeValue(forKey: streamID) else { return }
                call.cancel()
                handler.reply(context, streamID: streamID, .failure(TTRPCError(.deadlineExceeded, "context deadline exceeded")))
            }
        }
    }

    private func finish(_ context: ChannelHandlerContext, streamID: UInt32, _ result: Result<TTRPCReplyPayload, any Error>) {
        // Gone when the deadline already answered or the connection closed.
        guard inflight.removeValue(forKey: streamID) != nil else { return }
        reply(context, streamID: streamID, result)
    }

    /// Replies with at least this many payload bytes are written without copying the payload.
    static let zeroCopyPayloadBytes = 64 * 1024

    private func reply(_ context: ChannelHandlerContext, streamID: UInt32, _ result: Result<TTRPCReplyPayload, any Error>) {
        guard context.channel.isActive else { return }
        // A large successful reply goes out as the frame's header and envelope up to the payload's
        // length, then the payload's parts themselves: the payload (stream data, mostly) is not
        // copied once more, which counts where every copy is emulated (a TCG guest's agent).
        if case .success(let payload) = result {
            let size = payload.readableBytes
            if size >= Self.zeroCopyPayloadBytes, size + 16 <= TTRPCWire.maxPayloadSize {
                var prefix = context.channel.allocator.buffer(capacity: TTRPCWire.headerSize + 16)
                prefix.writeTTRPCFrame(streamID: streamID, type: .response, extraLength: size) {
                    TTRPCResponse.encodeSuccessPrefix(payloadLength: size, into: &$0)
                }
                send(prefix, context: context, othersPending: true)
                let parts = payload.parts.filter { $0.readableBytes > 0 }  // not empty: size >= zeroCopyPayloadBytes
                for (index, part) in parts.enumerated() {
                    send(part, context: context, othersPending: index < parts.count - 1 || !inflight.isEmpty)
                }
                return
            }
        }
        let response: TTRPCResponse
        switch result {
        case .success(let payload):
            response = TTRPCResponse(payload: payload.joined)
        case .failure(let error):
            let status = TTRPCError(mapping: error)
            if status.code == .unknown || status.code == .internal {
                logger.debug("ttrpc call failed", metadata: ["stream": "\(streamID)", "error": "\(status)"])
            }
            response = TTRPCResponse(status: status, payload: ByteBuffer())
        }
        var frame = context.channel.allocator.buffer(
            capacity: TTRPCWire.headerSize + response.payload.readableBytes + 64 + (response.status?.message.utf8.count ?? 0))
        let length = frame.writeTTRPCFrame(streamID: streamID, type: .response) { response.encode(into: &$0) }
        // Never send a frame the peer must refuse: a ttrpc 1.2 server drops the connection when its own
        // reply is too large, which containerd reads as shim death. Send ResourceExhausted instead.
        if length > TTRPCWire.maxPayloadSize {
            let status = TTRPCError(.resourceExhausted, "reply of \(length) bytes exceeds the maximum message size of \(TTRPCWire.maxPayloadSize)")
            frame.clear()
            frame.writeTTRPCFrame(streamID: streamID, type: .response) { TTRPCResponse(status: status, payload: ByteBuffer()).encode(into: &$0) }
        }
        send(frame, context: context, othersPending: !inflight.isEmpty)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        inReadBurst = false
        if flushAfterRead {
            flushAfterRead = false
            context.flush()
        }
        context.fireChannelReadComplete()
    }

    /// Writes a reply's buffer: flushed at the end of the current read, or as `FlushCoalescer` decides.
    private func send(_ buffer: ByteBuffer, context: ChannelHandlerContext, othersPending: Bool) {
        guard !inReadBurst else {
            context.write(NIOAny(buffer), promise: nil)
            flushAfterRead = true
            return
        }
        flusher.write(buffer, context: context, othersPending: othersPending)
    }

    func channelInactive(context: ChannelHandlerContext) {
        for call in inflight.values { call.cancel() }
        inflight.removeAll()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("ttrpc connection error, closing", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }
}
