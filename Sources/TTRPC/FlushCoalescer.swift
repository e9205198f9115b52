import NIOCore

/// Batches flushes: frames written during one event-loop tick go out in a single `writev`.
/// Many replies (or calls) completing together then cost one syscall instead of one each, while a
/// lone call is flushed at once and pays no extra hop. Owned by one channel handler and used only
/// on its event loop.
final class FlushCoalescer {
    private var flushScheduled = false

    /// Writes `frame` and flushes it now when `othersPending` is false; otherwise makes sure a flush
    /// follows at the end of this tick, so frames of concurrent calls share one syscall.
    func write(_ frame: ByteBuffer, context: ChannelHandlerContext, othersPending: Bool) {
        context.write(NIOAny(frame), promise: nil)
        guard othersPending else {
            if !flushScheduled { context.flush() }
            return
        }
        guard !flushScheduled else { return }
        flushScheduled = true
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let (coalescer, context) = loopBound.value
            coalescer.flushScheduled = false
            context.flush()
        }
    }
}
