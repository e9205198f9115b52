import AgentAPI
import Glibc
import SwiftKataOS

/// The TCP connections the host forwards into the pod (kubectl port-forward). Each is dialled from
/// the guest to a port of the pod's network namespace (the VM's own, which its containers share):
/// on the loopback first, then on each IPv4 address of the guest's interfaces, so a server bound to
/// either answers. Their bytes move with the host's Write and Read calls. At most
/// `maxConnections` at once: the host asks, the guest's resources decide.
actor PortForwards {
    static let maxConnections = 256

    /// One forwarded connection; its descriptor closes once nothing uses it any more (a read
    /// blocked on another thread keeps it open until `shutdown` wakes it).
    final class Connection: Sendable {
        let fd: CInt
        init(fd: CInt) { self.fd = fd }
        deinit { Glibc.close(fd) }
    }

    private var connections: [UInt64: Connection] = [:]
    private var nextID: UInt64 = 1

    func open(port: UInt32) async throws(AgentError) -> UInt64 {
        guard (1...65535).contains(port) else { throw AgentError(code: .invalid, description: "port \(port) is outside 1...65535") }
        guard connections.count < Self.maxConnections else {
            throw AgentError(code: .resourceExhausted, description: "\(Self.maxConnections) forwarded connections are open already")
        }
        let candidates = ["127.0.0.1"] + Self.interfaceAddresses()
        let dialled = await onBlockingThread { () -> (CInt, CInt) in
            var lastError: CInt = ECONNREFUSED
            for address in candidates {
                let fd = Self.connect(to: address, port: UInt16(port))
                if fd >= 0 { return (fd, 0) }
                lastError = -fd
            }
            return (-1, lastError)
        }
        guard dialled.0 >= 0 else {
            throw AgentError(
                code: .failedPrecondition,
                description: "nothing in the pod accepts connections on port \(port) (\(String(cString: strerror(dialled.1))))")
        }
        let id = nextID
        nextID += 1
        connections[id] = Connection(fd: dialled.0)
        return id
    }

    func connection(_ id: UInt64) throws(AgentError) -> Connection {
        guard let connection = connections[id] else { throw AgentError(code: .notFound, description: "forwarded connection \(id): not found") }
        return connection
    }

    /// Ends the host's writing half (the server reads EOF), or the whole connection.
    func close(_ id: UInt64, writeOnly: Bool) throws(AgentError) {
        let connection = try connection(id)
        if writeOnly {
            shutdown(connection.fd, Int32(SHUT_WR))
        } else {
            shutdown(connection.fd, Int32(SHUT_RDWR))
            connections[id] = nil
        }
    }

    /// A connected TCP socket to `address`:`port`, or -errno.
    private static func connect(to address: String, port: UInt16) -> CInt {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return -errno }
        var target = sockaddr_in()
        target.sin_family = sa_family_t(AF_INET)
        target.sin_port = port.bigEndian
        inet_pton(AF_INET, address, &target.sin_addr)
        let result = withUnsafePointer(to: &target) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            let error = errno
            Glibc.close(fd)
            return -error
        }
        return fd
    }

    /// The IPv4 addresses of the guest's interfaces other than the loopback.
    private static func interfaceAddresses() -> [String] {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return [] }
        defer { freeifaddrs(list) }
        var addresses: [String] = []
        for entry in sequence(first: first, next: { $0.pointee.ifa_next }) {
            guard let address = entry.pointee.ifa_addr, address.pointee.sa_family == sa_family_t(AF_INET),
                (entry.pointee.ifa_flags & UInt32(IFF_LOOPBACK)) == 0
            else { continue }
            var text = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
            address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { ipv4 in
                var ip = ipv4.pointee.sin_addr
                _ = inet_ntop(AF_INET, &ip, &text, socklen_t(text.count))
            }
            addresses.append(String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return addresses
    }
}
