import CLinuxSys
import Glibc

/// A directory held open by descriptor. Everything done through it is relative to that descriptor
/// and never follows a symlink, so nobody who can rename or replace entries below it (the guest,
/// through the shared file system) can redirect an operation to another place on the host.
public struct OpenDirectory: ~Copyable {
    public let descriptor: CInt
    /// For messages only: the path it was opened as.
    public let path: String
    /// The file system it is on (`st_dev`) and the mount it was reached through; removals stop
    /// where an entry is on another file system or another mount (a bind of the same one).
    public let device: UInt64
    public let mountID: Int

    /// Opens `path` as a directory; its last component must not be a symlink. The components
    /// before it are trusted: use this for directories only root can change.
    public init(path: String) throws(SystemError) {
        let fd = retryingInterrupts { open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
        guard fd >= 0 else { throw .last("open", path: path) }
        try self.init(adopting: fd, path: path)
    }

    private init(adopting fd: CInt, path: String) throws(SystemError) {
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let error = SystemError.last("fstat", path: path)
            close(fd)
            throw error
        }
        descriptor = fd
        self.path = path
        device = UInt64(info.st_dev)
        mountID = MountTable.mountID(of: fd) ?? -1
    }

    deinit { close(descriptor) }

    /// Opens the entry `name` (one component) as a directory, without following a symlink.
    public func openDirectory(_ name: String) throws(SystemError) -> OpenDirectory {
        try Self.checkComponent(name, in: path)
        let fd = retryingInterrupts { openat(descriptor, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
        guard fd >= 0 else { throw .last("openat", path: "\(path)/\(name)") }
        return try OpenDirectory(adopting: fd, path: "\(path)/\(name)")
    }

    /// Opens `relative` (components separated by "/") one component at a time, never following a
    /// symlink, creating missing directories with `createMode` when it is given.
    public func openDirectory(relative: String, createMode: mode_t? = nil) throws(SystemError) -> OpenDirectory {
        let components = relative.split(separator: "/").map(String.init)
        guard !components.isEmpty else { throw SystemError("openat", path: "\(path)/\(relative)", errno: .invalidArgument) }
        var current = try reopened()
        for name in components {
            if let createMode {
                try Self.checkComponent(name, in: current.path)
                if mkdirat(current.descriptor, name, createMode) != 0 && errno != EEXIST {
                    throw .last("mkdirat", path: "\(current.path)/\(name)")
                }
            }
            current = try current.openDirectory(name)
        }
        return current
    }

    /// A second descriptor for this directory.
    public func reopened() throws(SystemError) -> OpenDirectory {
        let fd = retryingInterrupts { openat(descriptor, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        guard fd >= 0 else { throw .last("openat", path: path) }
        return try OpenDirectory(adopting: fd, path: path)
    }

    /// The entry `name`'s status, without following a symlink; nil when it does not exist.
    public func status(of name: String) throws(SystemError) -> stat? {
        try Self.checkComponent(name, in: path)
        var info = stat()
        if fstatat(descriptor, name, &info, AT_SYMLINK_NOFOLLOW) == 0 { return info }
        if errno == ENOENT { return nil }
        throw .last("fstatat", path: "\(path)/\(name)")
    }

    /// The names in this directory, without "." and "..".
    public func entries() throws(SystemError) -> [String] {
        // fdopendir takes the descriptor it is given; hand it a fresh one at offset 0.
        let fd = retryingInterrupts { openat(descriptor, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        guard fd >= 0 else { throw .last("openat", path: path) }
        guard let stream = fdopendir(fd) else {
            let error = SystemError.last("fdopendir", path: path)
            close(fd)
            throw error
        }
        defer { closedir(stream) }
        return entryNames(of: stream)
    }

    /// Removes the entry `name` and, for a directory, everything below it, by descriptor: a
    /// directory is opened with `O_NOFOLLOW` and emptied through its own descriptor, so a rename
    /// or a symlink swapped in meanwhile never sends a removal outside this directory's subtree.
    /// Directories on another file system than this one (mount points) are neither entered nor
    /// removed. Missing entries are fine. Returns what was left behind and why.
    @discardableResult
    public func removeTree(_ name: String, maxDepth: Int = 64) -> [SystemError] {
        var left: [SystemError] = []
        removeEntry(name, depth: maxDepth, left: &left)
        return left
    }

    /// Empties this directory (every entry, as `removeTree`) without removing it.
    @discardableResult
    public func removeContents(maxDepth: Int = 64) -> [SystemError] {
        var left: [SystemError] = []
        removeContents(depth: maxDepth, left: &left)
        return left
    }

    /// A hook between a directory's listing and the removal of its entries, for tests that
    /// race a swap into exactly that window.
    nonisolated(unsafe) public static var afterListingForTesting: ((String) -> Void)?

    private func removeContents(depth: Int, left: inout [SystemError]) {
        let names: [String]
        do { names = try entries() } catch {
            left.append(error)
            return
        }
        Self.afterListingForTesting?(path)
        for name in names { removeEntry(name, depth: depth, left: &left) }
    }

    private func removeEntry(_ name: String, depth: Int, left: inout [SystemError]) {
        let entryPath = "\(path)/\(name)"
        if unlinkat(descriptor, name, 0) == 0 || errno == ENOENT { return }
        guard errno == EISDIR || errno == EPERM else {
            left.append(.last("unlinkat", path: entryPath))
            return
        }
        guard depth > 0 else {
            left.append(SystemError("remove", path: entryPath, errno: .tooManySymbolicLinkLevels))
            return
        }
        do {
            let child = try openDirectory(name)
            guard child.device == device, child.mountID == mountID else {
                left.append(SystemError("remove", path: entryPath, errno: .resourceBusy))
                return
            }
            child.removeContents(depth: depth - 1, left: &left)
        } catch {
            if error.errno != .noSuchFileOrDirectory { left.append(error) }
            return
        }
        if unlinkat(descriptor, name, AT_REMOVEDIR) != 0 && errno != ENOENT {
            left.append(.last("rmdir", path: entryPath))
        }
    }

    /// A single path component: not empty, not "." or "..", no "/".
    static func checkComponent(_ name: String, in path: String) throws(SystemError) {
        guard !name.isEmpty, name != ".", name != "..", !name.utf8.contains(UInt8(ascii: "/")) else {
            throw SystemError("openat", path: "\(path)/\(name)", errno: .invalidArgument)
        }
    }
}
