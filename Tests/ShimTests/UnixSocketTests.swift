import Glibc
import Testing

@testable import Shim

@Suite struct UnixSocketTests {
    @Test func aListenerKnowsItsOwnPath() throws {
        let path = "/tmp/swiftkata-unixsocket-\(getpid())"
        unlink(path)
        defer { unlink(path) }
        let fd = try UnixSocket.listen(path: path)
        defer { close(fd) }
        #expect(UnixSocket.boundPath(of: fd) == path)
        #expect(UnixSocket.isServing(path: path))
    }

    @Test func unnamedAndNonUnixSocketsHaveNoPath() {
        var pair: [CInt] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0)
        defer { pair.forEach { close($0) } }
        #expect(UnixSocket.boundPath(of: pair[0]) == nil)
        let inet = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(inet) }
        #expect(UnixSocket.boundPath(of: inet) == nil)
        #expect(UnixSocket.boundPath(of: -1) == nil)
    }
}
