import NIOCore

/// Batches flushes: frames written during one event-loop tick go out in a single `writev`.
/// Many replies (or calls) completing together then cost one syscall instead of one each.
struct FlushCoalescer {
    private var flushScheduled = false

    /// Writes `frame` now and makes sure a flush follows at the end of this tick.
    mutating func write<Handler: ChannelHandler>(
        _ frame: ByteBuffer, context: ChannelHandlerContext, handler: Handler,
        promise: EventLoopPromise<Void>? = nil,
        coalescer: ReferenceWritableKeyPath<Handler, FlushCoalescer>
    ) {
        context.write(NIOAny(frame), promise: promise)
        guard !flushScheduled else { return }
        flushScheduled = true
        let loopBound = NIOLoopBound((handler, context), eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let (handler, context) = loopBound.value
            handler[keyPath: coalescer].flushScheduled = false
            context.flush()
        }
    }
}
