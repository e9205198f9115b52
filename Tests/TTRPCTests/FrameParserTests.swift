import NIOCore
import Testing

@testable import TTRPC

@Suite("Frame parser")
struct FrameParserTests {
    private func frame(stream: UInt32, type: TTRPCMessageType = .request, payload: [UInt8]) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeTTRPCHeader(TTRPCFrameHeader(length: UInt32(payload.count), streamID: stream, type: type))
        buffer.writeBytes(payload)
        return buffer
    }

    @Test func headerIsBigEndian() {
        var buffer = ByteBuffer()
        buffer.writeTTRPCHeader(TTRPCFrameHeader(length: 0x0102_0304, streamID: 0x0506_0708, type: .response, flags: 0x01))
        #expect(Array(buffer.readableBytesView) == [1, 2, 3, 4, 5, 6, 7, 8, 2, 1])
    }

    @Test func parsesFramesFedOneByteAtATime() {
        var parser = TTRPCFrameParser()
        var input = frame(stream: 1, payload: [1, 2, 3])
        input.writeImmutableBuffer(frame(stream: 3, type: .response, payload: []))
        var pending = ByteBuffer()
        var frames: [TTRPCInboundFrame] = []
        for byte in input.readableBytesView {
            pending.writeInteger(byte)
            while let frame = parser.next(from: &pending) { frames.append(frame) }
        }
        #expect(frames.count == 2)
        guard case .frame(let first, let payload) = frames[0], case .frame(let second, let empty) = frames[1] else {
            Issue.record("unexpected \(frames)")
            return
        }
        #expect(first == TTRPCFrameHeader(length: 3, streamID: 1, type: .request))
        #expect(Array(payload.readableBytesView) == [1, 2, 3])
        #expect(second.streamID == 3 && second.type == .response)
        #expect(empty.readableBytes == 0)
    }

    @Test func truncatedHeaderWaitsAndFailsAtEOF() throws {
        var decoder = TTRPCFrameDecoder(maxPayloadSize: TTRPCWire.maxPayloadSize)
        var buffer = ByteBuffer(bytes: [0, 0, 0, 5, 0])
        #expect(try decoder.decode(buffer: &buffer) == nil)
        #expect(throws: TTRPCError.self) { try decoder.decodeLast(buffer: &buffer, seenEOF: true) }
    }

    @Test func truncatedPayloadFailsAtEOF() throws {
        var decoder = TTRPCFrameDecoder(maxPayloadSize: TTRPCWire.maxPayloadSize)
        var buffer = frame(stream: 1, payload: [1, 2, 3, 4])
        buffer.moveWriterIndex(to: buffer.writerIndex - 1)
        #expect(try decoder.decode(buffer: &buffer) == nil)
        let error = #expect(throws: TTRPCError.self) { try decoder.decodeLast(buffer: &buffer, seenEOF: true) }
        #expect(error?.code == .dataLoss)
    }

    @Test func payloadOfExactlyTheLimitIsAccepted() {
        var parser = TTRPCFrameParser()
        var buffer = frame(stream: 1, payload: [UInt8](repeating: 7, count: TTRPCWire.maxPayloadSize))
        guard case .frame(let header, let payload) = parser.next(from: &buffer) else {
            Issue.record("a payload of exactly 4 MiB must be accepted")
            return
        }
        #expect(header.length == UInt32(TTRPCWire.maxPayloadSize))
        #expect(payload.readableBytes == TTRPCWire.maxPayloadSize)
    }

    @Test func oversizedPayloadIsSkippedWithoutBufferingAndTheStreamStaysInSync() {
        var parser = TTRPCFrameParser()
        let oversize = TTRPCWire.maxPayloadSize + 1
        var header = ByteBuffer()
        header.writeTTRPCHeader(TTRPCFrameHeader(length: UInt32(oversize), streamID: 7, type: .request))
        var pending = header
        guard case .oversized(let reported) = parser.next(from: &pending) else {
            Issue.record("oversized frame not reported")
            return
        }
        #expect(reported.streamID == 7 && reported.length == UInt32(oversize))
        // Feed the oversized body in 64 KiB chunks: the parser consumes each chunk at once,
        // so nothing accumulates.
        var remaining = oversize
        let chunk = ByteBuffer(repeating: 0xee, count: 65536)
        while remaining > 0 {
            var piece = chunk.getSlice(at: 0, length: min(remaining, chunk.readableBytes))!
            remaining -= piece.readableBytes
            #expect(parser.next(from: &piece) == nil)
            #expect(piece.readableBytes == 0)
        }
        var next = frame(stream: 9, payload: [42])
        guard case .frame(let header9, let payload) = parser.next(from: &next) else {
            Issue.record("frame after the oversized one was lost")
            return
        }
        #expect(header9.streamID == 9)
        #expect(Array(payload.readableBytesView) == [42])
    }

    @Test func hugeLengthFieldAllocatesNothing() {
        var parser = TTRPCFrameParser()
        var buffer = ByteBuffer(bytes: [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 1, 0, 1, 2, 3])
        guard case .oversized(let header) = parser.next(from: &buffer) else {
            Issue.record("4 GiB length not reported as oversized")
            return
        }
        #expect(header.length == UInt32.max)
        #expect(buffer.readableBytes == 0)
    }

    @Test func unknownTypeIsDeliveredForTheConnectionToIgnore() {
        var parser = TTRPCFrameParser()
        var buffer = frame(stream: 1, type: TTRPCMessageType(rawValue: 0x7f), payload: [1])
        guard case .frame(let header, _) = parser.next(from: &buffer) else {
            Issue.record("frame of unknown type lost")
            return
        }
        #expect(header.type.rawValue == 0x7f)
        #expect(header.type.description == "type(127)")
    }
}

extension TTRPCInboundFrame: Equatable {
    public static func == (lhs: TTRPCInboundFrame, rhs: TTRPCInboundFrame) -> Bool {
        switch (lhs, rhs) {
        case let (.frame(h1, p1), .frame(h2, p2)): h1 == h2 && p1 == p2
        case let (.oversized(h1), .oversized(h2)): h1 == h2
        default: false
        }
    }
}
