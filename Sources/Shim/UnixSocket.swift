import Glibc
import SwiftKataOS

/// Plain unix-socket calls the shim needs outside NIO: binding the listener `start` hands to the
/// daemon, and probing whether a shim already serves an address.
enum UnixSocket {
    /// Binds and listens on `path` (mode 0600); returns the listening descriptor.
    static func listen(path: String) throws(ShimError) -> CInt {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw .internalError("socket: \(String(cString: strerror(errno)))") }
        var address = try makeAddress(path)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0 else {
            let error = errno
            close(fd)
            if error == EADDRINUSE { throw .alreadyExists("shim socket \(path)") }
            throw .internalError("binding \(path): \(String(cString: strerror(error)))")
        }
        guard chmod(path, 0o600) == 0, Glibc.listen(fd, 128) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            unlink(path)
            throw .internalError("listening on \(path): \(reason)")
        }
        return fd
    }

    /// The path the unix socket `fd` is bound to; nil for another kind of socket or an unnamed one.
    static func boundPath(of fd: CInt) -> String? {
        var address = sockaddr_un()
        var length = socklen_t(MemoryLayout<sockaddr_un>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        let pathOffset = MemoryLayout<sa_family_t>.size
        guard named == 0, address.sun_family == sa_family_t(AF_UNIX), Int(length) > pathOffset else { return nil }
        let path = withUnsafeBytes(of: address.sun_path) { raw in
            String(decoding: raw.prefix(Int(length) - pathOffset).prefix { $0 != 0 }, as: UTF8.self)
        }
        return path.hasPrefix("/") ? path : nil
    }

    /// Whether something accepts connections at `path`.
    static func isServing(path: String) -> Bool {
        guard let fd = connected(to: path) else { return false }
        close(fd)
        return true
    }

    /// Waits until nothing serves `path` any more: connects, then waits for the server to close the
    /// connection (it closes its listener or exits). True when the server is gone (or never was),
    /// false when it still serves after `timeout`.
    static func waitUntilDeparted(path: String, timeout: Duration) -> Bool {
        guard let fd = connected(to: path) else { return true }
        defer { close(fd) }
        let deadline = ContinuousClock.now + timeout
        var scratch = [UInt8](repeating: 0, count: 4096)
        while true {
            let left = deadline - ContinuousClock.now
            guard left > .zero else { return false }
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&entry, 1, CInt(clamping: left.milliseconds + 1))
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0 else { continue }
            // The server never writes unasked: anything but EOF is drained and waited past.
            let count = read(fd, &scratch, scratch.count)
            if count == 0 || (count < 0 && errno != EINTR && errno != EAGAIN) { return true }
        }
    }

    /// A stream socket connected to `path`; nil when nothing accepts there (or no socket is left).
    private static func connected(to path: String) -> CInt? {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        guard var address = try? makeAddress(path),
            withUnsafePointer(
                to: &address,
                {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
                }) == 0
        else {
            close(fd)
            return nil
        }
        return fd
    }

    private static func makeAddress(_ path: String) throws(ShimError) -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count <= ShimAddress.maxSocketPathLength else {
            throw .invalidArgument("socket path \(path) is longer than \(ShimAddress.maxSocketPathLength) bytes")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in bytes.enumerated() { raw[index] = byte }
        }
        return address
    }
}
