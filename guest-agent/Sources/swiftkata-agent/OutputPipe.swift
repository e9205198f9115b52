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
    /// Capacity of the buffer small reads are gathered in.
    static let tailCapacity = 64 * 1024

    private struct State {
        /// What the process wrote and the host has not taken yet, as NIO read it: kept as is, so
        /// nothing is copied until the host takes it.
        var chunks = CircularBuffer<ByteBuffer>()
        var bufferedBytes = 0
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
            // Reads as large as the pipe (1 MiB, see ProcessIO), not NIO's default of at most 64 KiB.
            .channelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 4096, initial: 65536, maximum: 1 << 20))
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
            state.bufferedBytes += bytes.readableBytes
            // A well-filled read is kept as it is; a small one (a line of a log) is copied to the tail
            // so that many small reads cannot pin many large, mostly empty buffers.
            var bytes = bytes
            if bytes.readableBytes * 2 >= bytes.capacity {
                state.chunks.append(bytes)
            } else if let lastIndex = state.chunks.indices.last, state.chunks[lastIndex].writableBytes >= bytes.readableBytes {
                state.chunks[lastIndex].writeBuffer(&bytes)
            } else {
                var tail = ByteBuffer()
                tail.reserveCapacity(max(Self.tailCapacity, bytes.readableBytes))
                tail.writeBuffer(&bytes)
                state.chunks.append(tail)
            }
            let pause = !state.paused && state.bufferedBytes > Self.highWater
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

    /// Waits for output; returns up to `max` bytes (as the buffers they arrived in, sliced, so they
    /// are copied once, by the caller) and whether the stream has ended after them.
    func read(max: Int) async -> ([ByteBuffer], eof: Bool) {
        while true {
            let ready = state.withLock { $0.bufferedBytes > 0 || $0.eof }
            if !ready {
                await withCheckedContinuation { continuation in
                    let resumeNow = state.withLock { state -> Bool in
                        if state.bufferedBytes > 0 || state.eof { return true }
                        state.waiters.append(continuation)
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
                continue
            }
            let (taken, eof, resume) = state.withLock { state -> ([ByteBuffer], Bool, Bool) in
                var taken: [ByteBuffer] = []
                var wanted = max
                while wanted > 0, var first = state.chunks.first {
                    if first.readableBytes <= wanted {
                        state.chunks.removeFirst()
                        wanted -= first.readableBytes
                        taken.append(first)
                    } else {
                        taken.append(first.readSlice(length: wanted)!)
                        state.chunks[state.chunks.startIndex] = first
                        wanted = 0
                    }
                }
                state.bufferedBytes -= max - wanted
                let resume = state.paused && state.bufferedBytes < Self.lowWater
                if resume { state.paused = false }
                return (taken, state.eof && state.bufferedBytes == 0, resume)
            }
            if resume, let channel = channel.withLock({ $0 }) {
                channel.setOption(.autoRead, value: true).whenComplete { _ in }
            }
            return (taken, eof)
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
