import NIOCore
import SwiftProtobuf

/// What a handler knows about the call it serves.
public struct TTRPCCallContext: Sendable {
    public var service: String
    public var method: String
    public var metadata: TTRPCMetadata
    /// When the caller stops waiting, if it sent a deadline.
    public var deadline: NIODeadline?

    public init(service: String, method: String, metadata: TTRPCMetadata = [:], deadline: NIODeadline? = nil) {
        self.service = service
        self.method = method
        self.metadata = metadata
        self.deadline = deadline
    }
}

/// A method handler on encoded bytes: request payload in, reply payload out.
public typealias TTRPCRawHandler = @Sendable (ByteBuffer, TTRPCCallContext) async throws -> ByteBuffer

/// A reply's encoded payload in one or more buffers, which go out back to back. A handler whose
/// reply is mostly data it already holds in several buffers (a process's output, as it was read)
/// returns them as they are instead of copying them into one; the server writes a large reply
/// without copying it (see `TTRPCServerHandler`).
public struct TTRPCReplyPayload: Sendable {
    public var parts: [ByteBuffer]

    public init(_ buffer: ByteBuffer) { parts = [buffer] }
    public init(parts: [ByteBuffer]) { self.parts = parts }

    public var readableBytes: Int { parts.reduce(0) { $0 + $1.readableBytes } }

    /// The payload in one buffer (copied, unless it has one part).
    public var joined: ByteBuffer {
        guard parts.count != 1 else { return parts[0] }
        var buffer = ByteBuffer()
        buffer.reserveCapacity(readableBytes)
        for var part in parts { buffer.writeBuffer(&part) }
        return buffer
    }
}

/// How a service's method is called: request payload in, reply payload (in parts) out.
///
/// A handler starts on its connection's event loop and runs there until it first suspends (calling
/// into an actor, say): one that answers at once replies within the read, but one that would block
/// before its first `await` (mounts, sysfs writes, waiting on a process) must first move off the
/// loop, or every other call and stream on the connection waits meanwhile.
public typealias TTRPCMethodHandler = @Sendable (ByteBuffer, TTRPCCallContext) async throws -> TTRPCReplyPayload

/// A named ttrpc service: its methods by name.
public struct TTRPCServiceDefinition: Sendable {
    public let name: String
    public private(set) var methods: [String: TTRPCMethodHandler] = [:]

    public init(name: String) {
        self.name = name
        methods.reserveCapacity(64)  // one allocation for a whole service (the agent registers ~40 at its start)
    }

    public mutating func addRawMethod(_ method: String, _ handler: @escaping TTRPCRawHandler) {
        methods[method] = { payload, context in TTRPCReplyPayload(try await handler(payload, context)) }
    }

    /// Registers a method on encoded bytes whose reply comes in parts (`TTRPCReplyPayload`).
    public mutating func addGatheringMethod(
        _ method: String, _ handler: @escaping @Sendable (ByteBuffer, TTRPCCallContext) async throws -> TTRPCReplyPayload
    ) {
        methods[method] = handler
    }

    /// Registers a typed unary method. A payload that does not decode is answered with `Internal`,
    /// as containerd's Go server does.
    public mutating func addMethod<Request: Message, Response: Message>(
        _ method: String,
        _ handler: @escaping @Sendable (Request, TTRPCCallContext) async throws -> Response
    ) {
        let serviceName = name
        methods[method] = { payload, context in
            let request: Request
            do {
                request = try Request(serializedBytes: ProtoBytes(payload))
            } catch {
                throw TTRPCError(.internal, "\(serviceName).\(method): request does not decode: \(error)")
            }
            let response = try await handler(request, context)
            return TTRPCReplyPayload(try response.serializedBytes(as: ProtoBytes.self).buffer)
        }
    }
}

/// A `ByteBuffer` that SwiftProtobuf can decode from and serialize into without an extra copy.
public struct ProtoBytes: SwiftProtobufContiguousBytes {
    public var buffer: ByteBuffer

    public init(_ buffer: ByteBuffer) { self.buffer = buffer }

    public init(repeating: UInt8, count: Int) {
        buffer = ByteBuffer(repeating: repeating, count: count)
    }

    public init<S: Sequence>(_ sequence: S) where S.Element == UInt8 {
        buffer = ByteBuffer(bytes: sequence)
    }

    public var count: Int { buffer.readableBytes }

    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try buffer.withUnsafeReadableBytes(body)
    }

    public mutating func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        try buffer.withUnsafeMutableReadableBytes(body)
    }
}

extension Message {
    /// Encodes the message into a `ByteBuffer`.
    public func serializedBuffer() throws -> ByteBuffer {
        try serializedBytes(as: ProtoBytes.self).buffer
    }

    /// Decodes a message from a `ByteBuffer` without copying it first.
    public init(serializedBuffer buffer: ByteBuffer) throws {
        try self.init(serializedBytes: ProtoBytes(buffer))
    }
}

extension Message {
    fileprivate func serializedBytes(as: ProtoBytes.Type) throws -> ProtoBytes {
        try serializedBytes()
    }
}
