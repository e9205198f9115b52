import Dispatch
import Glibc

/// Runs a blocking system call (opening a FIFO that waits for its peer, a read or write on one) on a
/// Dispatch worker thread, so neither the event loop nor the cooperative pool ever blocks.
func onBlockingThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(returning: body()) }
    }
}

enum BlockingIO {
    /// Writes all of `bytes`; false when the reader went away (EPIPE) or another error occurred.
    static func writeAll(_ fd: CInt, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { return false }
            offset += written
        }
        return true
    }

    /// One read of up to `limit` bytes; empty at EOF or on error.
    static func readChunk(_ fd: CInt, limit: Int) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: limit)
        while true {
            let count = read(fd, &buffer, limit)
            if count < 0 && errno == EINTR { continue }
            return count > 0 ? Array(buffer[0..<count]) : []
        }
    }
}
