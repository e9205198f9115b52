import NIOCore
import Testing

@testable import TTRPC

@Suite("Request and response envelopes")
struct EnvelopeTests {
    @Test func requestRoundTripsWithMetadataAndDeadline() throws {
        var metadata: TTRPCMetadata = ["Containerd-Namespace-TTRPC": "k8s.io"]
        metadata.add("x-multi", "a")
        metadata.add("x-multi", "b")
        let request = TTRPCRequest(
            service: "containerd.task.v2.Task", method: "State", payload: ByteBuffer(bytes: [1, 2, 3]),
            timeoutNanos: 2_000_000_000, metadata: metadata)
        var buffer = ByteBuffer()
        request.encode(into: &buffer)
        let decoded = try TTRPCRequest(decoding: buffer)
        #expect(decoded.service == request.service)
        #expect(decoded.method == "State")
        #expect(decoded.payload == request.payload)
        #expect(decoded.timeoutNanos == 2_000_000_000)
        #expect(decoded.metadata[TTRPCMetadata.namespaceKey] == ["k8s.io"])
        #expect(decoded.metadata["X-MULTI"] == ["a", "b"])
    }

    @Test func requestEncodingMatchesProtobufFieldNumbers() {
        let request = TTRPCRequest(service: "s", method: "m", payload: ByteBuffer(bytes: [9]), timeoutNanos: 1)
        var buffer = ByteBuffer()
        request.encode(into: &buffer)
        // service=1 "s", method=2 "m", payload=3 [9], timeout_nano=4 varint 1
        #expect(Array(buffer.readableBytesView) == [0x0a, 1, 0x73, 0x12, 1, 0x6d, 0x1a, 1, 9, 0x20, 1])
    }

    @Test func successResponseAlwaysCarriesAnEmptyStatus() throws {
        var buffer = ByteBuffer()
        TTRPCResponse(payload: ByteBuffer(bytes: [5])).encode(into: &buffer)
        #expect(Array(buffer.readableBytesView) == [0x0a, 0, 0x12, 1, 5])
        let decoded = try TTRPCResponse(decoding: buffer)
        #expect(decoded.status == nil)
    }

    @Test func errorStatusRoundTripsIncludingNegativeAndUnknownCodes() throws {
        for code in [TTRPCStatusCode.notFound, TTRPCStatusCode(rawValue: 99), TTRPCStatusCode(rawValue: -1)] {
            var buffer = ByteBuffer()
            TTRPCResponse(status: TTRPCError(code, "thing: not found"), payload: ByteBuffer()).encode(into: &buffer)
            let decoded = try TTRPCResponse(decoding: buffer)
            #expect(decoded.status == TTRPCError(code, "thing: not found"))
        }
    }

    @Test func absentStatusAndCodeZeroMeanOK() throws {
        #expect(try TTRPCResponse(decoding: ByteBuffer(bytes: [0x12, 1, 5])).status == nil)
        #expect(try TTRPCResponse(decoding: ByteBuffer(bytes: [0x0a, 2, 0x08, 0])).status == nil)
    }

    @Test func unknownFieldsAreSkipped() throws {
        // field 9 varint, field 10 fixed64, field 11 fixed32, then method=2 "m"
        let bytes: [UInt8] = [0x48, 0x96, 0x01, 0x51, 1, 2, 3, 4, 5, 6, 7, 8, 0x5d, 1, 2, 3, 4, 0x12, 1, 0x6d]
        #expect(try TTRPCRequest(decoding: ByteBuffer(bytes: bytes)).method == "m")
    }

    @Test(arguments: [
        ("truncated varint", [0x20, 0x80] as [UInt8]),
        ("length beyond the buffer", [0x0a, 0x05, 0x61]),
        ("group wire type", [0x0b]),
        ("field number zero", [0x02, 0x00]),
        ("varint over 64 bits", [0x20, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]),
        ("truncated fixed64", [0x51, 1, 2]),
        ("truncated metadata pair", [0x2a, 0x03, 0x0a, 0x05, 0x61]),
    ])
    func malformedEnvelopesAreRejected(_ name: String, _ bytes: [UInt8]) {
        #expect(throws: ProtoDecodingError.self, "\(name)") { try TTRPCRequest(decoding: ByteBuffer(bytes: bytes)) }
    }

    @Test func statusCodeNames() {
        #expect(TTRPCStatusCode.resourceExhausted.description == "ResourceExhausted")
        #expect(TTRPCStatusCode(rawValue: 42).description == "Code(42)")
    }
}
