import Glibc
import OperatorAPI
import SwiftKataOS
import SwiftProtobuf
import TTRPC

/// The pods of this node as their shims serve them to `swiftkata-ctl`: one `operator.sock` in each
/// pod directory under the state directory (root only).
public struct PodSockets: Sendable {
    public let stateDirectory: String

    public init(stateDirectory: String) { self.stateDirectory = stateDirectory }

    /// Every pod's operator socket, in a stable order.
    public func all() -> [String] {
        let pods = "\(stateDirectory)/pods"
        return directoryEntries(pods).sorted().compactMap { key in
            let path = "\(pods)/\(key)/operator.sock"
            var info = stat()
            guard lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFSOCK else { return nil }
            return path
        }
    }

    /// The description of every pod whose shim answered within `timeout`, and how many did not.
    public func describeAll(askGuest: Bool, timeout: Duration = .seconds(5)) async -> (pods: [Swiftkata_Operator_V1_PodDescription], unreachable: Int) {
        await withTaskGroup(of: Swiftkata_Operator_V1_PodDescription?.self) { group in
            for socket in all() {
                group.addTask { try? await PodOperatorConnection.describe(socket: socket, askGuest: askGuest, timeout: timeout) }
            }
            var pods: [Swiftkata_Operator_V1_PodDescription] = []
            var unreachable = 0
            for await description in group {
                if let description { pods.append(description) } else { unreachable += 1 }
            }
            return (pods.sorted { ($0.namespace, $0.podID) < ($1.namespace, $1.podID) }, unreachable)
        }
    }

    /// The one pod whose id is `podID` or starts with it (as crictl accepts a unique prefix), with its socket.
    public func find(_ podID: String) async throws(CtlError) -> (socket: String, pod: Swiftkata_Operator_V1_PodDescription) {
        var matches: [(String, Swiftkata_Operator_V1_PodDescription)] = []
        for socket in all() {
            guard let pod = try? await PodOperatorConnection.describe(socket: socket, askGuest: false, timeout: .seconds(5)) else { continue }
            if pod.podID == podID { return (socket, pod) }
            if !podID.isEmpty && pod.podID.hasPrefix(podID) { matches.append((socket, pod)) }
        }
        guard !matches.isEmpty else { throw CtlError("no running pod \(podID) on this node (swiftkata-ctl pods lists them)") }
        guard matches.count == 1 else {
            throw CtlError("\(podID) matches \(matches.count) pods: \(matches.map { $0.1.podID }.joined(separator: ", "))")
        }
        return matches[0]
    }
}

/// One connection to a pod shim's operator socket.
enum PodOperatorConnection {
    static func describe(socket: String, askGuest: Bool, timeout: Duration) async throws -> Swiftkata_Operator_V1_PodDescription {
        let client = try await TTRPCClient.connect(unixSocketPath: socket)
        defer { Task { await client.close() } }
        return try await Swiftkata_Operator_V1_PodOperatorClient(client).describe(.with { $0.askGuest = askGuest }, timeout: timeout)
    }
}

/// A failure `swiftkata-ctl` reports to its user in one line.
public struct CtlError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
