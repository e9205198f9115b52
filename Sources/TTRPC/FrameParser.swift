import NIOCore

/// Splits a byte stream into ttrpc frames.
///
/// Memory stays bounded by the payload limit: the parser never allocates by a length field. An
/// oversized payload is reported once as ``TTRPCInboundFrame/oversized(_:)`` and its bytes are then
/// skipped as they arrive, so the stream stays in sync and the connection survives.
public struct TTRPCFrameParser: Sendable {
    public let maxPayloadSize: Int
    private var bytesToSkip = 0

    public init(maxPayloadSize: Int = TTRPCWire.maxPayloadSize) {
        self.maxPayloadSize = maxPayloadSize
    }

    /// True while the parser is in the middle of a frame (a truncated stream ends here).
    public func isMidFrame(pending buffer: ByteBuffer) -> Bool {
        bytesToSkip > 0 || buffer.readableBytes > 0
    }

    /// Consumes the next frame from `buffer`, or returns nil when more bytes are needed.
    public mutating func next(from buffer: inout ByteBuffer) -> TTRPCInboundFrame? {
        while bytesToSkip > 0 {
            let skipped = min(bytesToSkip, buffer.readableBytes)
            guard skipped > 0 else { return nil }
            buffer.moveReaderIndex(forwardBy: skipped)
            bytesToSkip -= skipped
        }
        guard buffer.readableBytes >= TTRPCWire.headerSize,
            let length = buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: UInt32.self),
            let streamID = buffer.getInteger(at: buffer.readerIndex + 4, endianness: .big, as: UInt32.self),
            let type = buffer.getInteger(at: buffer.readerIndex + 8, as: UInt8.self),
            let flags = buffer.getInteger(at: buffer.readerIndex + 9, as: UInt8.self)
        else { return nil }
        let header = TTRPCFrameHeader(
            length: length, streamID: streamID, type: TTRPCMessageType(rawValue: type), flags: flags)
        if UInt64(length) > UInt64(maxPayloadSize) {
            buffer.moveReaderIndex(forwardBy: TTRPCWire.headerSize)
            bytesToSkip = Int(length)
            let skipped = min(bytesToSkip, buffer.readableBytes)
            buffer.moveReaderIndex(forwardBy: skipped)
            bytesToSkip -= skipped
            return .oversized(header)
        }
        guard buffer.readableBytes >= TTRPCWire.headerSize + Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: TTRPCWire.headerSize)
        let payload = buffer.readSlice(length: Int(length))!
        return .frame(header, payload: payload)
    }
}

/// NIO adapter for ``TTRPCFrameParser``.
struct TTRPCFrameDecoder: NIOSingleStepByteToMessageDecoder {
    typealias InboundOut = TTRPCInboundFrame
    private var parser: TTRPCFrameParser

    init(maxPayloadSize: Int) {
        parser = TTRPCFrameParser(maxPayloadSize: maxPayloadSize)
    }

    mutating func decode(buffer: inout ByteBuffer) throws -> TTRPCInboundFrame? {
        parser.next(from: &buffer)
    }

    mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> TTRPCInboundFrame? {
        if let frame = parser.next(from: &buffer) { return frame }
        if parser.isMidFrame(pending: buffer) {
            let pending = buffer.readableBytes
            buffer.moveReaderIndex(forwardBy: pending)
            throw TTRPCError(.dataLoss, "ttrpc: connection closed inside a frame (\(pending) bytes pending)")
        }
        return nil
    }
}
