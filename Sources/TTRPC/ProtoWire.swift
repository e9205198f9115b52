import NIOCore

/// Minimal protobuf wire-format reading and writing for the ttrpc envelope.
///
/// The envelope is decoded by hand so that payloads stay zero-copy slices of the received frame,
/// and so that every length is checked against the bytes actually present.
enum ProtoWireType: UInt8 {
    case varint = 0, fixed64 = 1, lengthDelimited = 2, fixed32 = 5
}

/// A decoding failure; the message says which field was wrong.
struct ProtoDecodingError: Error, CustomStringConvertible {
    var description: String
}

struct ProtoReader {
    private var buffer: ByteBuffer

    init(_ buffer: ByteBuffer) { self.buffer = buffer }

    var isAtEnd: Bool { buffer.readableBytes == 0 }

    mutating func readVarint() throws -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard let byte = buffer.readInteger(as: UInt8.self) else {
                throw ProtoDecodingError(description: "truncated varint")
            }
            if shift == 63 && byte > 1 { throw ProtoDecodingError(description: "varint overflows 64 bits") }
            result |= UInt64(byte & 0x7f) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
        }
    }

    /// Reads a field key; returns nil at the end of the message.
    mutating func readTag() throws -> (field: UInt32, type: ProtoWireType)? {
        if isAtEnd { return nil }
        let key = try readVarint()
        let field = key >> 3
        guard field > 0, field <= 0x1fff_ffff else { throw ProtoDecodingError(description: "invalid field number \(field)") }
        guard let type = ProtoWireType(rawValue: UInt8(key & 7)) else {
            throw ProtoDecodingError(description: "unsupported wire type \(key & 7) for field \(field)")
        }
        return (UInt32(field), type)
    }

    mutating func readLengthDelimited() throws -> ByteBuffer {
        let length = try readVarint()
        guard length <= UInt64(buffer.readableBytes), let slice = buffer.readSlice(length: Int(length)) else {
            throw ProtoDecodingError(description: "length \(length) exceeds the \(buffer.readableBytes) bytes left")
        }
        return slice
    }

    mutating func readString() throws -> String {
        let slice = try readLengthDelimited()
        return String(decoding: slice.readableBytesView, as: UTF8.self)
    }

    mutating func skip(_ type: ProtoWireType) throws {
        switch type {
        case .varint: _ = try readVarint()
        case .fixed64: try skipBytes(8)
        case .fixed32: try skipBytes(4)
        case .lengthDelimited: _ = try readLengthDelimited()
        }
    }

    private mutating func skipBytes(_ count: Int) throws {
        guard buffer.readableBytes >= count else { throw ProtoDecodingError(description: "truncated fixed-width field") }
        buffer.moveReaderIndex(forwardBy: count)
    }
}

extension ByteBuffer {
    @inlinable
    mutating func writeProtoVarint(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            writeInteger(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        writeInteger(UInt8(value))
    }

    mutating func writeProtoTag(_ field: UInt32, _ type: ProtoWireType) {
        writeProtoVarint(UInt64(field) << 3 | UInt64(type.rawValue))
    }

    mutating func writeProtoBytes(_ field: UInt32, _ bytes: ByteBuffer) {
        writeProtoTag(field, .lengthDelimited)
        writeProtoVarint(UInt64(bytes.readableBytes))
        writeImmutableBuffer(bytes)
    }

    mutating func writeProtoString(_ field: UInt32, _ string: String) {
        writeProtoTag(field, .lengthDelimited)
        writeProtoVarint(UInt64(string.utf8.count))
        writeString(string)
    }

    /// Writes a length-delimited submessage whose body `write` produces.
    mutating func writeProtoMessage(_ field: UInt32, _ write: (inout ByteBuffer) -> Void) {
        var body = ByteBuffer()
        write(&body)
        writeProtoBytes(field, body)
    }
}

/// Encoded size of a varint, to precompute frame lengths.
func protoVarintSize(_ value: UInt64) -> Int {
    var size = 1
    var value = value >> 7
    while value != 0 {
        size += 1
        value >>= 7
    }
    return size
}

/// Hand-encoding of simple messages on hot paths, where building a generated message first would
/// copy its bytes fields once more (the agent's stream output).
extension ByteBuffer {
    /// Appends the tag and length of a length-delimited field whose `length` value bytes the caller
    /// sends right after, from buffers of its own (`TTRPCReplyPayload`).
    public mutating func writeProtobufBytesFieldHeader(_ field: UInt32, length: Int) {
        writeProtoTag(field, .lengthDelimited)
        writeProtoVarint(UInt64(length))
    }

    /// Appends a varint field (integers, bools, enums).
    public mutating func writeProtobufVarintField(_ field: UInt32, _ value: UInt64) {
        writeProtoTag(field, .varint)
        writeProtoVarint(value)
    }
}

/// Bounded decoding of a large reply: the first `limit` values of one repeated message field,
/// without materialising the rest (a reply of 4 MiB could hold millions of tiny entries).
public enum ProtoRepeatedField {
    /// The encoded entries of `field` (length-delimited) in `message`, at most `limit` of them;
    /// other fields are skipped. Throws on malformed input.
    public static func firstEntries(of field: UInt32, in message: ByteBuffer, limit: Int) throws -> [ByteBuffer] {
        var reader = ProtoReader(message)
        var entries: [ByteBuffer] = []
        while entries.count < limit, let tag = try reader.readTag() {
            if tag.field == field && tag.type == .lengthDelimited {
                entries.append(try reader.readLengthDelimited())
            } else {
                try reader.skip(tag.type)
            }
        }
        return entries
    }
}
