import AgentAPI

/// What one container shows the guest through the pod's shared directory.
struct ContainerShares: Sendable {
    /// containerd's rootfs mounts; empty when the bundle's `root.path` is the rootfs.
    var rootfs: [HostMounts.Spec]
    /// `root.path` of config.json, absolute or relative to the bundle (used when `rootfs` is empty).
    var rootPath: String?
    var bundle: String
    /// Host directories and files bind-mounted into the container (OCI `mounts` of type bind).
    var binds: [(index: Int, source: String, readOnly: Bool)]
}

/// The pod's host mounts: each container's rootfs and bind sources under the pod's shared
/// directory, and the pod's directory itself. `HostPodFilesystem` is the real one; tests drive
/// `Pod` with a fake.
protocol PodFilesystem: Sendable {
    /// Mounts the container's rootfs and bind sources under `layout`'s shared directory. Returns the
    /// guest path of each bind source, by its index in the spec's mounts.
    func share(_ containerID: String, _ shares: ContainerShares, in layout: PodLayout) throws(ShimError) -> [Int: String]
    /// Undoes `share` (idempotent); returns what was left behind.
    func unshare(_ containerID: String, in layout: PodLayout) -> [String]
    /// Removes the pod's host directory, its mounts first; returns what was left behind.
    func removePodDirectory(_ layout: PodLayout) -> [String]
}

/// The pod's mounts on the host (`HostMounts`), made and undone by descriptor.
struct HostPodFilesystem: PodFilesystem {
    func share(_ containerID: String, _ shares: ContainerShares, in layout: PodLayout) throws(ShimError) -> [Int: String] {
        let shared = layout.sharedDirectory
        if shares.rootfs.isEmpty {
            guard let root = shares.rootPath, !root.isEmpty else { throw .invalidArgument("no rootfs mounts and no root.path in config.json") }
            try HostMounts.bind(
                root.hasPrefix("/") ? root : "\(shares.bundle)/\(root)", root: shared,
                relative: PodLayout.rootfsName(containerID), readOnly: false)
        } else {
            try HostMounts.mountRootfs(shares.rootfs, root: shared, relative: PodLayout.rootfsName(containerID))
        }
        var guestSources: [Int: String] = [:]
        for bind in shares.binds {
            let relative = PodLayout.bindShareName(containerID, index: bind.index)
            try HostMounts.bind(bind.source, root: shared, relative: relative, readOnly: bind.readOnly)
            guestSources[bind.index] = "\(AgentProtocol.guestSharedRoot)/\(relative)"
        }
        return guestSources
    }

    func unshare(_ containerID: String, in layout: PodLayout) -> [String] {
        HostMounts.removeShare(PodLayout.sharedName(containerID: containerID), sharedDirectory: layout.sharedDirectory)
    }

    func removePodDirectory(_ layout: PodLayout) -> [String] {
        HostMounts.removePodDirectory(layout.directory)
    }
}
