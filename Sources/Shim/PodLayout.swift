import FoundationEssentials
import Hypervisor
import SwiftKataOS

/// Where a pod's host state lives: `<state_dir>/pods/<key>/` with `shared/` (seen by the guest; one
/// directory per container), `vm/` (QEMU's: the agent socket) and root's own files (the VM's
/// identity, the console log). The key is a hash of namespace and pod id, so paths stay short
/// enough for unix sockets whatever the ids are.
struct PodLayout: Sendable, Equatable, Codable {
    var namespace: String
    var podID: String
    var directory: String

    init(stateDirectory: String, namespace: String, podID: String) {
        self.namespace = namespace
        self.podID = podID
        directory = "\(stateDirectory)/pods/\(Digest.sha256Hex("\(namespace)/\(podID)").prefix(16))"
    }

    /// A warm-pool VM's directory: the same tree as a pod's, so a pod claims it with one rename.
    init(poolEntry entryID: String, directory: String) {
        namespace = ""
        podID = entryID
        self.directory = directory
    }

    var sharedDirectory: String { "\(directory)/shared" }
    var vmDirectory: String { "\(directory)/vm" }
    var agentSocket: String { "\(vmDirectory)/agent.sock" }
    /// The guest's serial console, written by virtlogd (root), which rotates it at its `max_size`
    /// (2 MiB, 3 backups by default): in the root-only pod directory, not in QEMU's `vm/`, so a
    /// QEMU escape cannot plant a link for root's log writer to follow.
    var consoleLog: String { "\(directory)/console.log" }
    /// Where the pod's shim serves `swiftkata-ctl` (root only).
    var operatorSocket: String { "\(directory)/operator.sock" }
    var owner: VMDescription.Owner { .init(podID: podID, namespace: namespace) }
    var domainName: String { VMDescription.domainName(for: owner) }

    /// The last lines of the guest console, for error messages.
    func consoleTail() -> String {
        // Written by the VM's side: read without following a link or waiting on a FIFO, end only.
        guard let bytes = try? readFileTail(consoleLog, limit: 2048) else { return "(no console output)" }
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n").suffix(5)
        return lines.isEmpty ? "(no console output)" : lines.joined(separator: " | ")
    }

    /// The container's directory in the shared file system, relative to its root (what the guest sees).
    static func sharedName(containerID: String) -> String { containerID }
    func containerDirectory(_ containerID: String) -> String { "\(sharedDirectory)/\(Self.sharedName(containerID: containerID))" }
    /// Below the shared directory: the container's rootfs and its bind-mount shares.
    static func rootfsName(_ containerID: String) -> String { "\(sharedName(containerID: containerID))/rootfs" }
    static func bindShareName(_ containerID: String, index: Int) -> String { "\(sharedName(containerID: containerID))/mounts/\(index)" }
}

/// What `delete` needs to clean up after a container whose daemon may be gone; written by `Create`
/// into the bundle as `swiftkata.json`.
struct ContainerRecord: Sendable, Equatable, Codable {
    var containerID: String
    var pod: PodLayout
    /// The container that booted the VM: its `delete` destroys the VM when the daemon is gone.
    var ownsVM: Bool
    var libvirtURI: String
    var qemuPID: Int32?
    /// The pod's network namespace and the interface mirrored into the VM (CRI pods), so `delete`
    /// can remove the tap and the redirect when the daemon is gone.
    var networkNamespace: String?
    var networkInterface: String?
    /// The pod's cgroup that QEMU and virtiofsd joined, removed by `delete` when the daemon is gone.
    var cgroupPath: String?

    static let fileName = "swiftkata.json"

    func save(bundle: String) throws(ShimError) {
        try saveStateFile(self, to: "\(bundle)/\(Self.fileName)")
    }

    static func load(bundle: String) -> ContainerRecord? {
        loadStateFile(ContainerRecord.self, from: "\(bundle)/\(fileName)", limit: 1 << 20)
    }
}

/// Writes host state the shim keeps as JSON (a container's record, a VM's identity) atomically,
/// readable by root only.
func saveStateFile<T: Encodable>(_ value: T, to path: String) throws(ShimError) {
    let bytes: [UInt8]
    do { bytes = Array(try JSONEncoder().encode(value)) } catch { throw .internalError("encoding \(path): \(error)") }
    try ShimError.system("writing a state file") { try writeFileAtomically(path, bytes, mode: 0o600) }
}

/// Reads a state file back: nil when it is missing, larger than `limit`, or not what `type` decodes.
func loadStateFile<T: Decodable>(_ type: T.Type, from path: String, limit: Int) -> T? {
    guard let bytes = readFile(path, limit: limit) else { return nil }
    return try? JSONDecoder().decode(type, from: Data(bytes))
}

/// Container ids become path components and domain names: containerd's identifier rules.
func validateIdentifier(_ id: String, what: String) throws(ShimError) {
    guard !id.isEmpty, id.utf8.count <= 76,
        id.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5a) || ($0 >= 0x61 && $0 <= 0x7a) || $0 == 0x2d || $0 == 0x2e || $0 == 0x5f }
        ),
        id != ".", id != ".."
    else { throw .invalidArgument("\(what) \"\(id)\" is not a valid identifier") }
}
