import Hypervisor
import SwiftKataOS

/// Where a shim listens: `unix:///run/containerd/s/<sha256(<containerd address>/<namespace>/<group id>)>`.
/// Every shim derives the same address for the same group, which is how a pod's later containers find
/// the shim its sandbox started.
public struct ShimAddress: Sendable, Equatable {
    public var socketPath: String
    public var uri: String { "unix://\(socketPath)" }

    /// containerd's constant socket directory (it does not follow the configured state directory).
    public static let socketDirectory = "/run/containerd/s"
    /// sun_path holds 108 bytes; containerd allows 106 for the path.
    public static let maxSocketPathLength = 106

    public init(containerdAddress: String, namespace: String, groupID: String) {
        socketPath = "\(Self.socketDirectory)/\(Digest.sha256Hex(Self.joinPath(containerdAddress, namespace, groupID)))"
    }

    public init(socketPath: String) { self.socketPath = socketPath }

    /// Parses an `address` file or printed address: `unix:///path`, or a bare path.
    public init?(uri: String) {
        let trimmed = uri.trimmingWhitespace()
        if trimmed.hasPrefix("unix://") {
            socketPath = String(trimmed.dropFirst("unix://".count))
        } else if trimmed.hasPrefix("/") {
            socketPath = trimmed
        } else {
            return nil
        }
    }

    /// The `address` file `start` writes into a bundle (containerd reads it after a restart).
    static func fileInBundle(_ bundle: String) -> String { "\(bundle)/address" }

    /// The address recorded in `bundle`, if there is a readable one.
    static func load(bundle: String) -> ShimAddress? {
        readFile(fileInBundle(bundle), limit: 4096).flatMap { ShimAddress(uri: String(decoding: $0, as: UTF8.self)) }
    }

    /// Records this address in `bundle`, atomically and without a newline.
    func save(bundle: String) throws(ShimError) {
        try ShimError.system("writing a state file") { try writeFileAtomically(Self.fileInBundle(bundle), Array(uri.utf8)) }
    }

    /// Go's filepath.Join: elements joined by "/", then cleaned (duplicate slashes removed).
    static func joinPath(_ parts: String...) -> String {
        let joined = parts.filter { !$0.isEmpty }.joined(separator: "/")
        var components: [Substring] = []
        for component in joined.split(separator: "/", omittingEmptySubsequences: true) {
            if component == "." { continue }
            if component == "..", let last = components.last, last != ".." { components.removeLast(); continue }
            components.append(component)
        }
        return (joined.hasPrefix("/") ? "/" : "") + components.joined(separator: "/")
    }
}
