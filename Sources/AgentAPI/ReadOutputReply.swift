import NIOCore
import TTRPC

/// A `ReadOutputResponse` encoded by hand around the output's own buffers: the data is not copied
/// into a message and then into a frame, since output is the agent's bulk traffic and every copy in
/// a TCG guest is emulated. Same wire format as the generated message (data = 1, eof = 2).
public enum ReadOutputReply {
    public static func encode(data chunks: [ByteBuffer], eof: Bool) -> TTRPCReplyPayload {
        let size = chunks.reduce(0) { $0 + $1.readableBytes }
        var parts: [ByteBuffer] = []
        if size > 0 {
            var head = ByteBuffer()
            head.writeProtobufBytesFieldHeader(1, length: size)
            parts = [head] + chunks.filter { $0.readableBytes > 0 }
        }
        if eof {
            var tail = ByteBuffer()
            tail.writeProtobufVarintField(2, 1)
            parts.append(tail)
        }
        return TTRPCReplyPayload(parts: parts)
    }
}
