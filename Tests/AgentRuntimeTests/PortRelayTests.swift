import CGuestSys
import Glibc
import Testing

/// `guest_port_relay` with pipes standing in for the virtio-serial port (a pipe's read end polls as
/// HUP once its writer closed, as the port does once the host hung up).
@Suite("Port relay")
struct PortRelayTests {
    /// A ttrpc request frame: 10-byte header (length, stream id, type 1, flags 0), then the payload.
    private func frame(stream: UInt32, payload: [UInt8]) -> [UInt8] {
        let length = UInt32(payload.count)
        var bytes: [UInt8] = []
        for value in [length, stream] { bytes += [UInt8(value >> 24), UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff), UInt8(value & 0xff)] }
        return bytes + [1, 0] + payload
    }

    private struct Pipe {
        var read: CInt
        var write: CInt
        init() throws {
            var fds: [CInt] = [-1, -1]
            guard pipe(&fds) == 0 else { throw Failure(errno: errno) }
            (read, write) = (fds[0], fds[1])
        }
    }

    private struct Failure: Error { var errno: CInt }

    private func send(_ bytes: [UInt8], to fd: CInt) {
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }

    private func drain(_ fd: CInt) -> [UInt8] {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        _ = fcntl(fd, F_SETFL, O_NONBLOCK)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { return out }
            out += buffer[0..<n]
        }
    }

    /// Runs one relay session; returns its result, what reached the connection, and the carry.
    private func session(port: CInt, carry: inout [UInt8]) throws -> (CInt, [UInt8]) {
        let requests = try Pipe()
        defer { close(requests.read) }
        var buffer = [UInt8](repeating: 0, count: 64 * 1024 + 16)
        buffer.replaceSubrange(0..<carry.count, with: carry)
        var carryLength = carry.count
        let result = buffer.withUnsafeMutableBufferPointer { guest_port_relay(port, requests.write, $0.baseAddress, $0.count, &carryLength) }
        close(requests.write)
        carry = Array(buffer[0..<carryLength])
        return (result, drain(requests.read))
    }

    @Test func oneHostsRequestsPassUntilItHangsUp() throws {
        let port = try Pipe()
        defer { close(port.read) }
        let frames = frame(stream: 1, payload: [1, 2, 3]) + frame(stream: 3, payload: []) + frame(stream: 5, payload: [9])
        send(frames, to: port.write)
        close(port.write)
        var carry: [UInt8] = []
        let (result, forwarded) = try session(port: port.read, carry: &carry)
        #expect(result == CInt(GUEST_RELAY_HOST_GONE))
        #expect(forwarded == frames)
        #expect(carry.isEmpty)
    }

    /// A next host's request read before the previous host's hang-up (its stream id starts again) ends
    /// the session there and goes to the next session, first.
    @Test func aRequestWhoseStreamIDStartsAgainBelongsToTheNextSession() throws {
        let port = try Pipe()
        defer { close(port.read) }
        let first = frame(stream: 1, payload: [1]) + frame(stream: 3, payload: [2, 2])
        let next = frame(stream: 1, payload: [7, 7, 7]) + frame(stream: 3, payload: [8])
        send(first + next, to: port.write)
        var carry: [UInt8] = []
        let (result, forwarded) = try session(port: port.read, carry: &carry)
        #expect(result == CInt(GUEST_RELAY_NEW_HOST))
        #expect(forwarded == first)
        #expect(carry == next)

        close(port.write)
        let (secondResult, secondForwarded) = try session(port: port.read, carry: &carry)
        #expect(secondResult == CInt(GUEST_RELAY_HOST_GONE))
        #expect(secondForwarded == next)
        #expect(carry.isEmpty)
    }

    /// A header cut by the hang-up is not forwarded: it goes on to the next session.
    @Test func aHeaderCutByTheHangUpGoesOn() throws {
        let port = try Pipe()
        defer { close(port.read) }
        let whole = frame(stream: 1, payload: [5])
        let cut = Array(frame(stream: 3, payload: [6]).prefix(4))
        send(whole + cut, to: port.write)
        close(port.write)
        var carry: [UInt8] = []
        let (result, forwarded) = try session(port: port.read, carry: &carry)
        #expect(result == CInt(GUEST_RELAY_HOST_GONE))
        #expect(forwarded == whole)
        #expect(carry == cut)
    }

    @Test func aClosedConnectionEndsTheSession() throws {
        let port = try Pipe()
        defer {
            close(port.read)
            close(port.write)
        }
        let requests = try Pipe()
        close(requests.read)
        signal(SIGPIPE, SIG_IGN)
        var buffer = [UInt8](repeating: 0, count: 64 * 1024 + 16)
        var carryLength = 0
        let result = buffer.withUnsafeMutableBufferPointer { guest_port_relay(port.read, requests.write, $0.baseAddress, $0.count, &carryLength) }
        close(requests.write)
        #expect(result == CInt(GUEST_RELAY_AGENT_CLOSED))
    }
}
