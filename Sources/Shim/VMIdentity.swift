/// Which libvirt domain and tap device serve a VM directory, kept as `identity.json` in the pod's
/// directory, which only root can write (`vm/` is QEMU's: nothing root decides on is read from there).
/// A pod's own VM has names derived from the pod; a warm-pool VM keeps the names it was
/// booted with after a pod claims it (libvirt cannot rename a running domain), so `delete` reads them
/// from here. Written before the domain starts, completed once it runs.
struct VMIdentity: Sendable, Equatable, Codable {
    var domainName: String
    /// The tap the VM's NIC is attached to (warm-pool VMs always have one; pods only with a network).
    var tapName: String?
    /// The MAC address the guest NIC was booted with.
    var macAddress: String?
    var qemuPID: Int32?
    var vsockCID: UInt32?
    /// When the domain started (seconds since the epoch).
    var startedAt: Int64?
    /// The shared directory the VM's virtiofsd was started on: the one on its command line, where
    /// root's virtiofsd is found later, also after a pod claimed the warm-pool VM (which renames it).
    var fileServerSource: String?

    static let fileName = "identity.json"

    static func path(in layout: PodLayout) -> String { "\(layout.directory)/\(fileName)" }

    func save(in layout: PodLayout) throws(ShimError) {
        try saveStateFile(self, to: Self.path(in: layout))
    }

    /// The identity in `layout`'s VM directory; nil when it is missing or not valid (names must look
    /// like what swiftkata creates, so a damaged file cannot make `delete` destroy another domain).
    static func load(in layout: PodLayout) -> VMIdentity? {
        guard let identity = loadStateFile(VMIdentity.self, from: path(in: layout), limit: 64 << 10),
            identity.domainName.hasPrefix("swiftkata"), identity.domainName.utf8.count <= 160,
            identity.tapName.map({ !$0.isEmpty && $0.utf8.count < 16 && !$0.contains("/") }) ?? true
        else { return nil }
        return identity
    }
}
