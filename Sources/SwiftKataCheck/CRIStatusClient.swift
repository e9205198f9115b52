import FoundationEssentials
import Glibc
import SwiftKataOS

/// What the running containerd's CRI plugin says of itself (`runtime.v1.RuntimeService/Status` with
/// verbose set, the call `crictl info` makes): its conditions, and its effective configuration, from
/// which the runtime type of each handler is read. Not the configuration file: the plugin's own view.
public struct CRIRuntimeStatus: Sendable, Equatable {
    /// "RuntimeReady", "NetworkReady" → whether it holds.
    public var conditions: [String: Bool]
    /// CRI handler name → its runtime type ("io.containerd.runc.v2", …).
    public var runtimeTypes: [String: String]
}

/// One gRPC call over containerd's unix socket, spoken directly: HTTP/2 with prior knowledge, a
/// HEADERS frame written with HPACK literals only, one DATA frame each way. Small on purpose: no
/// gRPC library for one call of a readiness check. Every read is bounded (size and time).
enum CRIStatusClient {
    static let path = "/runtime.v1.RuntimeService/Status"
    /// Largest reply accepted (containerd's verbose status is ≈ 10–30 KiB).
    static let replyLimit = 1 << 20

    static func status(socketPath: String, timeout: Int = 5) -> Result<CRIRuntimeStatus, HostProbeError> {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .failure(HostProbeError("socket: \(String(cString: strerror(errno)))")) }
        defer { close(fd) }
        var limit = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(socketPath.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return .failure(HostProbeError("socket path too long")) }
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in buffer.copyBytes(from: bytes) }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else { return .failure(HostProbeError("connect \(socketPath): \(String(cString: strerror(errno)))")) }
        guard send(fd, request()) else { return .failure(HostProbeError("writing to \(socketPath): \(String(cString: strerror(errno)))")) }
        switch readReply(fd) {
        case .failure(let error): return .failure(error)
        case .success(let message):
            guard let status = decodeStatus(message) else { return .failure(HostProbeError("containerd's CRI status does not decode")) }
            return .success(status)
        }
    }

    /// The connection preface, empty SETTINGS, the request's HEADERS and its one DATA frame.
    static func request() -> [UInt8] {
        var bytes = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
        bytes += frame(type: 0x4, flags: 0, stream: 0, payload: [])
        var headers: [UInt8] = [0x83, 0x86]  // :method POST, :scheme http (static table 3, 6)
        headers += literal(indexedName: 4, prefixBits: 4, value: path)  // :path
        headers += literal(indexedName: 1, prefixBits: 4, value: "localhost")  // :authority
        headers += literal(indexedName: 31, prefixBits: 4, value: "application/grpc")  // content-type
        headers += [0x00] + string("te") + string("trailers")
        bytes += frame(type: 0x1, flags: 0x4, stream: 1, payload: headers)  // END_HEADERS
        let message: [UInt8] = [0x08, 0x01]  // StatusRequest { verbose: true }
        let grpc: [UInt8] = [0, 0, 0, 0, UInt8(message.count)] + message
        bytes += frame(type: 0x0, flags: 0x1, stream: 1, payload: grpc)  // END_STREAM
        return bytes
    }

    /// Reads frames until stream 1 ends; returns the gRPC message of its DATA frames.
    static func readReply(_ fd: CInt) -> Result<[UInt8], HostProbeError> {
        var data: [UInt8] = []
        var received = 0
        while true {
            guard let header = readExactly(fd, 9) else { return .failure(HostProbeError("containerd closed the connection before replying")) }
            let length = Int(header[0]) << 16 | Int(header[1]) << 8 | Int(header[2])
            let (type, flags) = (header[3], header[4])
            let stream = (UInt32(header[5] & 0x7f) << 24) | UInt32(header[6]) << 16 | UInt32(header[7]) << 8 | UInt32(header[8])
            received += 9 + length
            guard length <= 1 << 24, received <= replyLimit, let payload = readExactly(fd, length) else {
                return .failure(HostProbeError("containerd's reply is over \(replyLimit) bytes or cut short"))
            }
            switch type {
            case 0x4 where flags & 0x1 == 0:  // the server's SETTINGS: acknowledge
                guard send(fd, frame(type: 0x4, flags: 0x1, stream: 0, payload: [])) else { return .failure(HostProbeError("writing a SETTINGS ack")) }
            case 0x6 where flags & 0x1 == 0:  // PING: answer
                guard send(fd, frame(type: 0x6, flags: 0x1, stream: 0, payload: payload)) else { return .failure(HostProbeError("writing a PING ack")) }
            case 0x7:  // GOAWAY
                return .failure(HostProbeError("containerd refused the call (GOAWAY)"))
            case 0x3 where stream == 1:  // RST_STREAM
                return .failure(HostProbeError("containerd reset the call"))
            case 0x0 where stream == 1:
                var body = payload[...]
                if flags & 0x8 != 0, let pad = body.first { body = body.dropFirst().dropLast(Int(pad)) }  // PADDED
                data += body
            default:
                break
            }
            if stream == 1 && flags & 0x1 != 0 && (type == 0x0 || type == 0x1) { break }  // END_STREAM
        }
        // One gRPC message: compressed flag, 4-byte length, the protobuf.
        guard data.count >= 5, data[0] == 0 else {
            return .failure(HostProbeError("containerd answered without a status (is this containerd's CRI v1 API?)"))
        }
        let length = Int(data[1]) << 24 | Int(data[2]) << 16 | Int(data[3]) << 8 | Int(data[4])
        guard data.count >= 5 + length else { return .failure(HostProbeError("containerd's status was cut short")) }
        return .success(Array(data[5..<(5 + length)]))
    }

    /// `StatusResponse { RuntimeStatus status = 1; map<string, string> info = 2; }`: the conditions,
    /// and the runtime type of each handler from `info["config"]` (the CRI plugin's JSON configuration).
    static func decodeStatus(_ message: [UInt8]) -> CRIRuntimeStatus? {
        var result = CRIRuntimeStatus(conditions: [:], runtimeTypes: [:])
        guard let fields = ProtoFields.parse(message[...]) else { return nil }
        for (field, value) in fields {
            if field == 1, let status = ProtoFields.parse(value) {
                for (conditionField, condition) in status where conditionField == 1 {
                    guard let parts = ProtoFields.parse(condition) else { continue }
                    let type = parts.first { $0.0 == 1 }.map { String(decoding: $0.1, as: UTF8.self) } ?? ""
                    result.conditions[type] = parts.first { $0.0 == 2 }.map { $0.1 == [1] } ?? false
                }
            }
            if field == 2, let entry = ProtoFields.parse(value) {
                let key = entry.first { $0.0 == 1 }.map { String(decoding: $0.1, as: UTF8.self) }
                guard key == "config", let json = entry.first(where: { $0.0 == 2 })?.1 else { continue }
                guard let config = try? JSONDecoder().decode(CRIConfigJSON.self, from: Data(json)) else { return nil }
                for (name, runtime) in config.containerd?.runtimes ?? [:] { result.runtimeTypes[name] = runtime.runtimeType ?? "" }
            }
        }
        return result
    }

    private struct CRIConfigJSON: Decodable {
        struct Containerd: Decodable { var runtimes: [String: Runtime]? }
        struct Runtime: Decodable { var runtimeType: String? }
        var containerd: Containerd?
    }

    static func frame(type: UInt8, flags: UInt8, stream: UInt32, payload: [UInt8]) -> [UInt8] {
        let length = payload.count
        return [UInt8(length >> 16 & 0xff), UInt8(length >> 8 & 0xff), UInt8(length & 0xff), type, flags]
            + [UInt8(stream >> 24 & 0x7f), UInt8(stream >> 16 & 0xff), UInt8(stream >> 8 & 0xff), UInt8(stream & 0xff)] + payload
    }

    /// An HPACK "literal header field without indexing" whose name is static table entry `index`.
    static func literal(indexedName index: Int, prefixBits: Int, value: String) -> [UInt8] {
        integer(index, prefixBits: prefixBits, flags: 0) + string(value)
    }

    /// An HPACK string literal (not Huffman-coded).
    static func string(_ text: String) -> [UInt8] {
        let bytes = Array(text.utf8)
        return integer(bytes.count, prefixBits: 7, flags: 0) + bytes
    }

    /// HPACK's prefixed integer.
    static func integer(_ value: Int, prefixBits: Int, flags: UInt8) -> [UInt8] {
        let maximum = (1 << prefixBits) - 1
        if value < maximum { return [flags | UInt8(value)] }
        var bytes: [UInt8] = [flags | UInt8(maximum)]
        var rest = value - maximum
        while rest >= 128 {
            bytes.append(UInt8(rest & 0x7f) | 0x80)
            rest >>= 7
        }
        return bytes + [UInt8(rest)]
    }

    private static func send(_ fd: CInt, _ bytes: [UInt8]) -> Bool {
        (try? writeAll(fd: fd, bytes)) != nil
    }

    private static func readExactly(_ fd: CInt, _ count: Int) -> [UInt8]? {
        var bytes = [UInt8](repeating: 0, count: count)
        var offset = 0
        while offset < count {
            let got = bytes[offset...].withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if got < 0 && errno == EINTR { continue }
            guard got > 0 else { return nil }
            offset += got
        }
        return bytes
    }
}

/// The length-delimited and varint fields of a protobuf message, in order (what the status needs).
enum ProtoFields {
    static func parse(_ message: ArraySlice<UInt8>) -> [(UInt32, ArraySlice<UInt8>)]? {
        var fields: [(UInt32, ArraySlice<UInt8>)] = []
        var index = message.startIndex
        func varint() -> UInt64? {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while index < message.endIndex, shift < 64 {
                let byte = message[index]
                index += 1
                value |= UInt64(byte & 0x7f) << shift
                if byte & 0x80 == 0 { return value }
                shift += 7
            }
            return nil
        }
        while index < message.endIndex {
            guard let key = varint() else { return nil }
            let field = UInt32(truncatingIfNeeded: key >> 3)
            switch key & 7 {
            case 0:
                let start = index
                guard varint() != nil else { return nil }
                // A varint field is given as its bytes; a bool true is [1].
                fields.append((field, message[start..<index]))
            case 2:
                guard let length = varint(), length <= UInt64(message.endIndex - index) else { return nil }
                let end = index + Int(length)
                fields.append((field, message[index..<end]))
                index = end
            case 5: index += 4
            case 1: index += 8
            default: return nil
            }
            if index > message.endIndex { return nil }
        }
        return fields
    }
}
