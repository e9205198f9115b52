import CLinuxSys
import Glibc

/// Bind mounts made with the new mount API: the copy of the source tree is detached, its attributes
/// (read-only, nosuid, nodev) are set on every mount in it, and only then is it attached at the
/// target. No half-configured mount is ever visible, submounts are as read-only as the top, and the
/// target is an open descriptor, not a path someone could swap.
public enum BindMount {
    public struct Attributes: OptionSet, Sendable {
        public let rawValue: UInt64
        public init(rawValue: UInt64) { self.rawValue = rawValue }
        public static let readOnly = Attributes(rawValue: linux_MOUNT_ATTR_RDONLY)
        public static let noSetuid = Attributes(rawValue: linux_MOUNT_ATTR_NOSUID)
        public static let noDevices = Attributes(rawValue: linux_MOUNT_ATTR_NODEV)
        public static let noExec = Attributes(rawValue: linux_MOUNT_ATTR_NOEXEC)
    }

    /// Binds the tree at `source` (with its submounts) onto the inode `target` is open on (an
    /// `O_PATH` descriptor is enough), with `attributes` applied to the whole tree.
    public static func attach(source: String, onto target: CInt, targetPath: String, attributes: Attributes) throws(SystemError) {
        let tree = linux_open_tree(AT_FDCWD, source, linux_OPEN_TREE_CLONE | linux_OPEN_TREE_CLOEXEC | linux_AT_RECURSIVE)
        guard tree >= 0 else { throw .last("open_tree", path: source) }
        defer { close(tree) }
        if !attributes.isEmpty {
            guard linux_mount_setattr(tree, "", UInt32(linux_AT_EMPTY_PATH) | linux_AT_RECURSIVE, attributes.rawValue, 0) == 0 else {
                throw .last("mount_setattr", path: source)
            }
        }
        guard linux_move_mount(tree, "", target, "", linux_MOVE_MOUNT_F_EMPTY_PATH | linux_MOVE_MOUNT_T_EMPTY_PATH) == 0 else {
            throw .last("move_mount", path: targetPath)
        }
        // The copy joined the source's peer group: as a slave it still receives what the host mounts
        // below the source later (HostToContainer), but nothing done to the copy (its unmount when
        // the container goes) reaches the host's mounts.
        guard linux_mount_set_propagation(tree, "", UInt32(linux_AT_EMPTY_PATH) | linux_AT_RECURSIVE, UInt64(MS_SLAVE)) == 0 else {
            throw .last("mount_setattr (slave)", path: targetPath)
        }
    }
}
