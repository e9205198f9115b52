import Glibc

/// Runs a blocking call (opening a FIFO that waits for its peer, a read or write on one, starting a
/// domain, an accept) on a thread of its own, so neither the event loop nor the cooperative pool ever blocks.
/// Not on Dispatch's global queue: on Linux it runs about one worker per CPU and adds more only after
/// a while, so a stdin FIFO that waits for its writer plus a domain start (≈ 400 ms) held up every
/// other blocking call of the shim (the output copy, and with it the exit) for that long.
public func onBlockingThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        let work: @Sendable () -> Void = { continuation.resume(returning: body()) }
        // No thread to be had (resource limits): run it where we are rather than never.
        if !startDetachedThread(work) { work() }
    }
}

/// Runs `body` on a new detached thread (one that nobody joins); false, and nothing run, when no
/// thread could be created.
@discardableResult
public func startDetachedThread(_ body: @escaping @Sendable () -> Void) -> Bool {
    let work = Unmanaged.passRetained(ThreadWork(body))
    var thread = pthread_t()
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
    defer { pthread_attr_destroy(&attributes) }
    let created = pthread_create(
        &thread, &attributes,
        { context in
            Unmanaged<ThreadWork>.fromOpaque(context!).takeRetainedValue().run()
            return nil
        }, work.toOpaque())
    if created != 0 { work.release() }
    return created == 0
}

/// A closure handed to a new thread.
private final class ThreadWork: Sendable {
    let run: @Sendable () -> Void
    init(_ run: @escaping @Sendable () -> Void) { self.run = run }
}
