import NIOCore

/// The `ttrpc.Request` envelope: which method to call, its encoded argument, deadline and metadata.
public struct TTRPCRequest: Sendable {
    public var service: String
    public var method: String
    public var payload: ByteBuffer
    /// The caller's remaining deadline in nanoseconds; 0 means none.
    public var timeoutNanos: Int64
    public var metadata: TTRPCMetadata

    public init(service: String, method: String, payload: ByteBuffer, timeoutNanos: Int64 = 0, metadata: TTRPCMetadata = [:]) {
        self.service = service
        self.method = method
        self.payload = payload
        self.timeoutNanos = timeoutNanos
        self.metadata = metadata
    }
}

/// The `ttrpc.Response` envelope: a status and, on success, the encoded reply.
public struct TTRPCResponse: Sendable {
    /// nil or code OK means success.
    public var status: TTRPCError?
    public var payload: ByteBuffer

    public init(status: TTRPCError? = nil, payload: ByteBuffer) {
        self.status = status
        self.payload = payload
    }
}

extension TTRPCRequest {
    /// Field numbers of `ttrpc.Request`.
    private enum Field { static let service: UInt32 = 1, method: UInt32 = 2, payload: UInt32 = 3, timeout: UInt32 = 4, metadata: UInt32 = 5 }

    public init(decoding buffer: ByteBuffer) throws {
        self.init(service: "", method: "", payload: ByteBuffer())
        var reader = ProtoReader(buffer)
        while let (field, type) = try reader.readTag() {
            switch (field, type) {
            case (Field.service, .lengthDelimited): service = try reader.readString()
            case (Field.method, .lengthDelimited): method = try reader.readString()
            case (Field.payload, .lengthDelimited): payload = try reader.readLengthDelimited()
            case (Field.timeout, .varint): timeoutNanos = Int64(bitPattern: try reader.readVarint())
            case (Field.metadata, .lengthDelimited):
                var pair = ProtoReader(try reader.readLengthDelimited())
                var key = "", value = ""
                while let (field, type) = try pair.readTag() {
                    switch (field, type) {
                    case (1, .lengthDelimited): key = try pair.readString()
                    case (2, .lengthDelimited): value = try pair.readString()
                    default: try pair.skip(type)
                    }
                }
                metadata.add(key, value)
            default: try reader.skip(type)
            }
        }
    }

    /// Appends the encoded envelope to `buffer`.
    public func encode(into buffer: inout ByteBuffer) {
        if !service.isEmpty { buffer.writeProtoString(Field.service, service) }
        if !method.isEmpty { buffer.writeProtoString(Field.method, method) }
        if payload.readableBytes > 0 { buffer.writeProtoBytes(Field.payload, payload) }
        if timeoutNanos != 0 {
            buffer.writeProtoTag(Field.timeout, .varint)
            buffer.writeProtoVarint(UInt64(bitPattern: timeoutNanos))
        }
        for (key, value) in metadata.pairs {
            buffer.writeProtoMessage(Field.metadata) { pair in
                pair.writeProtoString(1, key)
                pair.writeProtoString(2, value)
            }
        }
    }

    /// An upper bound of the encoded size, used to reserve capacity in one step.
    var encodedSizeEstimate: Int {
        64 + service.utf8.count + method.utf8.count + payload.readableBytes
            + metadata.pairs.reduce(0) { $0 + $1.key.utf8.count + $1.value.utf8.count + 12 }
    }
}

extension TTRPCResponse {
    private enum Field { static let status: UInt32 = 1, payload: UInt32 = 2 }

    public init(decoding buffer: ByteBuffer) throws {
        self.init(payload: ByteBuffer())
        var reader = ProtoReader(buffer)
        while let (field, type) = try reader.readTag() {
            switch (field, type) {
            case (Field.status, .lengthDelimited):
                var statusReader = ProtoReader(try reader.readLengthDelimited())
                var code: Int32 = 0
                var message = ""
                while let (field, type) = try statusReader.readTag() {
                    switch (field, type) {
                    case (1, .varint): code = Int32(truncatingIfNeeded: try statusReader.readVarint())
                    case (2, .lengthDelimited): message = try statusReader.readString()
                    default: try statusReader.skip(type)  // details (Any) are not interpreted
                    }
                }
                status = code == 0 ? nil : TTRPCError(TTRPCStatusCode(rawValue: code), message)
            case (Field.payload, .lengthDelimited): payload = try reader.readLengthDelimited()
            default: try reader.skip(type)
            }
        }
    }

    /// Appends the encoded envelope to `buffer`. Like Go's server, always includes the status.
    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeProtoMessage(Field.status) { body in
            if let status, status.code != .ok {
                body.writeProtoTag(1, .varint)
                body.writeProtoVarint(UInt64(bitPattern: Int64(status.code.rawValue)))
                if !status.message.isEmpty { body.writeProtoString(2, status.message) }
            }
        }
        if payload.readableBytes > 0 { buffer.writeProtoBytes(Field.payload, payload) }
    }

    /// A successful reply's envelope up to and including the tag and length of a payload of
    /// `payloadLength` bytes, which the caller sends right after.
    static func encodeSuccessPrefix(payloadLength: Int, into buffer: inout ByteBuffer) {
        buffer.writeProtoMessage(Field.status) { _ in }
        buffer.writeProtoTag(Field.payload, .lengthDelimited)
        buffer.writeProtoVarint(UInt64(payloadLength))
    }
}

extension ByteBuffer {
    /// Writes one complete frame (header + encoded envelope). Returns the payload length.
    @discardableResult
    /// `extraLength` counts bytes the caller writes after this buffer as part of the same frame.
    mutating func writeTTRPCFrame(streamID: UInt32, type: TTRPCMessageType, extraLength: Int = 0, encode: (inout ByteBuffer) -> Void) -> Int {
        let headerIndex = writerIndex
        writeRepeatingByte(0, count: TTRPCWire.headerSize)
        encode(&self)
        let length = writerIndex - headerIndex - TTRPCWire.headerSize + extraLength
        setInteger(UInt32(truncatingIfNeeded: length), at: headerIndex, endianness: .big)
        setInteger(streamID, at: headerIndex + 4, endianness: .big)
        setInteger(type.rawValue, at: headerIndex + 8)
        setInteger(UInt8(0), at: headerIndex + 9)
        return length
    }
}
