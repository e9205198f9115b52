import NIOCore

/// Decides what to do with one request frame: reject it with a status, or call a handler.
///
/// Pure and synchronous, so the server and the fuzz target share exactly the same checks.
public struct TTRPCRequestRouter: Sendable {
    /// The outcome of routing a request frame.
    public enum Route: Sendable {
        case reject(TTRPCError)
        case call(TTRPCMethodHandler, payload: ByteBuffer, context: TTRPCCallContext)
    }

    private let services: [String: TTRPCServiceDefinition]

    public init(services: [TTRPCServiceDefinition]) {
        self.services = Dictionary(services.map { ($0.name, $0) }, uniquingKeysWith: { _, last in last })
    }

    public func route(streamID: UInt32, payload: ByteBuffer, now: NIODeadline = .now()) -> Route {
        guard streamID % 2 == 1 else {
            return .reject(TTRPCError(.invalidArgument, "StreamID must be odd for client initiated streams"))
        }
        let request: TTRPCRequest
        do {
            request = try TTRPCRequest(decoding: payload)
        } catch {
            return .reject(TTRPCError(.invalidArgument, "request does not decode: \(error)"))
        }
        guard let service = services[request.service] else {
            return .reject(TTRPCError(.unimplemented, "service \(request.service)"))
        }
        guard let method = service.methods[request.method] else {
            return .reject(TTRPCError(.unimplemented, "method \(request.method)"))
        }
        let deadline = request.timeoutNanos > 0 ? now + .nanoseconds(request.timeoutNanos) : nil
        let context = TTRPCCallContext(
            service: request.service, method: request.method, metadata: request.metadata, deadline: deadline)
        return .call(method, payload: request.payload, context: context)
    }
}
