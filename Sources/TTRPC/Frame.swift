import NIOCore

/// Limits and constants of the ttrpc wire protocol (containerd/ttrpc, `PROTOCOL.md`).
public enum TTRPCWire {
    /// Size of the big-endian frame header: length (u32), stream id (u32), type (u8), flags (u8).
    public static let headerSize = 10
    /// Largest payload a peer may send; a payload of exactly this size is allowed.
    public static let maxPayloadSize = 4 << 20
}

/// The frame types of ttrpc. Unknown types are carried as raw values so peers can ignore them.
public struct TTRPCMessageType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let request = TTRPCMessageType(rawValue: 1)
    public static let response = TTRPCMessageType(rawValue: 2)
    /// Streaming data (ttrpc ≥ 1.2). Neither containerd's shim APIs nor ours use it.
    public static let data = TTRPCMessageType(rawValue: 3)

    public var description: String {
        switch self {
        case .request: "request"
        case .response: "response"
        case .data: "data"
        default: "type(\(rawValue))"
        }
    }
}

/// The fixed 10-byte header in front of every ttrpc payload.
public struct TTRPCFrameHeader: Hashable, Sendable {
    public var length: UInt32
    public var streamID: UInt32
    public var type: TTRPCMessageType
    public var flags: UInt8

    public init(length: UInt32, streamID: UInt32, type: TTRPCMessageType, flags: UInt8 = 0) {
        self.length = length
        self.streamID = streamID
        self.type = type
        self.flags = flags
    }
}

/// One frame as delivered by ``TTRPCFrameParser``.
public enum TTRPCInboundFrame: Sendable {
    /// A complete frame whose payload is within the size limit.
    case frame(TTRPCFrameHeader, payload: ByteBuffer)
    /// A frame whose announced payload exceeds the limit. Its bytes are skipped without being buffered.
    case oversized(TTRPCFrameHeader)
}

extension ByteBuffer {
    /// Writes a frame header; the caller writes `header.length` payload bytes after it.
    @inlinable
    public mutating func writeTTRPCHeader(_ header: TTRPCFrameHeader) {
        writeInteger(header.length, endianness: .big)
        writeInteger(header.streamID, endianness: .big)
        writeInteger(header.type.rawValue)
        writeInteger(header.flags)
    }
}
