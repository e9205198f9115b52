import NIOCore
import SwiftProtobuf
import TTRPC

/// The test service shared with the Go reference peer (`Tests/Interop/ttrpc-peer`):
/// `swiftkata.test.v1.Echo` with Echo, Fail, Metadata and Sleep.
public enum EchoService {
    public static let name = "swiftkata.test.v1.Echo"

    public static func definition() -> TTRPCServiceDefinition {
        var service = TTRPCServiceDefinition(name: name)
        service.addMethod("Echo") { (request: Google_Protobuf_BytesValue, _) in request }
        service.addMethod("Fail") { (request: Google_Protobuf_StringValue, _) -> Google_Protobuf_StringValue in
            let parts = request.value.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, let code = Int32(parts[0]) else {
                throw TTRPCError(.invalidArgument, "Fail wants \"<code>:<message>\", got \(request.value)")
            }
            throw TTRPCError(TTRPCStatusCode(rawValue: code), String(parts[1]))
        }
        service.addMethod("Metadata") { (request: Google_Protobuf_StringValue, context) in
            Google_Protobuf_StringValue(context.metadata[request.value].joined(separator: ","))
        }
        service.addMethod("Sleep") { (request: Google_Protobuf_StringValue, context) in
            guard let milliseconds = parseDuration(request.value) else {
                throw TTRPCError(.invalidArgument, "Sleep wants a duration like 200ms or 5s, got \(request.value)")
            }
            let remaining = context.deadline.map { ($0 - .now()).nanoseconds / 1_000_000 }
            try await Task.sleep(for: .milliseconds(milliseconds))
            return Google_Protobuf_StringValue(remaining.map { "slept deadline=\($0)" } ?? "slept nodeadline")
        }
        return service
    }
}

/// Parses the Go durations the peer sends ("200ms", "5s") into milliseconds.
private func parseDuration(_ text: String) -> Int64? {
    if text.hasSuffix("ms") { return Int64(text.dropLast(2)) }
    if text.hasSuffix("s") { return Int64(text.dropLast()).map { $0 * 1000 } }
    return nil
}
