import Glibc
import NIOCore
import NIOPosix
import Synchronization

/// One output stream of a guest process (stdout, stderr, or a pty master), buffered for the host.
///
/// The host pulls with `read(max:)`, which waits until bytes or EOF are there. The buffer is bounded:
/// above `highWater` the pipe stops being read, so a chatty process blocks on its own write instead
/// of growing the agent's memory.
final class OutputPipe: Sendable {
    static let highWater = 4 << 20
    static let lowWater = 1 << 20

    private struct State {
        var buffer = ByteBuffer()
        var eof = false
        var paused = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())
    private let channel = Mutex<(any Channel)?>(nil)

    /// Starts reading `fd` (takes ownership of it).
    static func reading(fd: CInt) async throws -> OutputPipe {
        let pipe = OutputPipe()
        let channel = try await NIOPipeBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Reader(pipe)) }
            }
            .takingOwnershipOfDescriptor(input: fd).get()
        pipe.channel.withLock { $0 = channel }
        return pipe
    }

    /// Bytes arrived from the process.
    fileprivate func append(_ bytes: ByteBuffer, channel: any Channel) {
        let (waiters, pause) = state.withLock { state -> ([CheckedContinuation<Void, Never>], Bool) in
            var bytes = bytes
            state.buffer.writeBuffer(&bytes)
            let pause = !state.paused && state.buffer.readableBytes > Self.highWater
            if pause { state.paused = true }
            defer { state.waiters = [] }
            return (state.waiters, pause)
        }
        if pause { channel.setOption(.autoRead, value: false).whenComplete { _ in } }
        for waiter in waiters { waiter.resume() }
    }

    /// The process closed its end (it exited, or closed the stream).
    fileprivate func finish() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.eof = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Waits for output; returns up to `max` bytes and whether the stream has ended (after them).
    func read(max: Int) async -> (ByteBuffer, eof: Bool) {
        while true {
            let ready = state.withLock { $0.buffer.readableBytes > 0 || $0.eof }
            if !ready {
                await withCheckedContinuation { continuation in
                    let resumeNow = state.withLock { state -> Bool in
                        if state.buffer.readableBytes > 0 || state.eof { return true }
                        state.waiters.append(continuation)
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
                continue
            }
            let (chunk, eof, resume) = state.withLock { state -> (ByteBuffer, Bool, Bool) in
                let count = min(max, state.buffer.readableBytes)
                let chunk = state.buffer.readSlice(length: count) ?? ByteBuffer()
                state.buffer.discardReadBytes()
                let resume = state.paused && state.buffer.readableBytes < Self.lowWater
                if resume { state.paused = false }
                return (chunk, state.eof && state.buffer.readableBytes == 0, resume)
            }
            if resume, let channel = channel.withLock({ $0 }) {
                channel.setOption(.autoRead, value: true).whenComplete { _ in }
            }
            return (chunk, eof)
        }
    }

    func close() {
        if let channel = channel.withLock({ $0 }) { channel.close(promise: nil) }
        finish()
    }

    private final class Reader: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let pipe: OutputPipe
        init(_ pipe: OutputPipe) { self.pipe = pipe }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            pipe.append(unwrapInboundIn(data), channel: context.channel)
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if case ChannelEvent.inputClosed = event {
                pipe.finish()
                context.close(promise: nil)
            }
        }

        func channelInactive(context: ChannelHandlerContext) { pipe.finish() }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            // EIO on a pty master when the last slave closes is an ordinary end of output.
            pipe.finish()
            context.close(promise: nil)
        }
    }
}
