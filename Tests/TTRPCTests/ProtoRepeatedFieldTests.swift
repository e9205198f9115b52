import NIOCore
import Testing

@testable import TTRPC

/// Bounded decoding of a repeated field: a lying peer's 4 MiB of tiny entries is cut at the limit.
@Suite struct ProtoRepeatedFieldTests {
    @Test func takesTheFirstEntriesOnlyAndSkipsOtherFields() throws {
        var message = ByteBuffer()
        message.writeProtoString(2, "another field")
        for index in 0..<100 {
            message.writeProtoMessage(1) { $0.writeProtoString(3, "entry \(index)") }
        }
        message.writeProtoTag(4, .varint)
        message.writeProtoVarint(7)
        let entries = try ProtoRepeatedField.firstEntries(of: 1, in: message, limit: 10)
        #expect(entries.count == 10)
        var last = ProtoReader(entries[9])
        #expect(try last.readTag()?.field == 3)
        #expect(try last.readString() == "entry 9")
        #expect(try ProtoRepeatedField.firstEntries(of: 1, in: message, limit: 1000).count == 100)
    }

    @Test func malformedInputThrows() {
        var truncated = ByteBuffer()
        truncated.writeProtoTag(1, .lengthDelimited)
        truncated.writeProtoVarint(50)
        truncated.writeString("short")
        #expect(throws: (any Error).self) { try ProtoRepeatedField.firstEntries(of: 1, in: truncated, limit: 10) }
    }
}
