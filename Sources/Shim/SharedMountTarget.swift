import Glibc

/// A mount target inside the pod's shared directory, reached without following symlinks.
///
/// The guest can write to the shared directory. A hostile guest could replace a path component
/// (`<container>/mounts/0`) with a symlink to a host path between the shim creating it and mounting
/// on it, and the host would then mount over, say, `/etc`. So every component is opened with
/// `O_NOFOLLOW` relative to the previous one, starting at the shared directory (which the guest
/// cannot touch), and the mount goes to `/proc/self/fd/<fd>`: the inode that was opened, wherever
/// the guest moves things afterwards.
struct SharedMountTarget: ~Copyable {
    let descriptor: Int32
    /// For messages: root + relative path.
    let displayPath: String

    enum Kind { case directory, file }

    /// Linux's O_PATH (glibc exposes it only with _GNU_SOURCE).
    static let O_PATH: Int32 = 0o10000000

    /// Opens (creating what is missing) `relative` below `root` as `kind`.
    init(root: String, relative: String, kind: Kind) throws(ShimError) {
        displayPath = "\(root)/\(relative)"
        let components = relative.split(separator: "/").map(String.init)
        guard !components.isEmpty, !components.contains(where: { $0 == ".." || $0 == "." }) else {
            throw .internalError("mount target \(relative) is not a plain relative path")
        }
        var current = open(root, Self.O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard current >= 0 else { throw .internalError("opening \(root): \(String(cString: strerror(errno)))") }
        for (index, name) in components.enumerated() {
            let isLast = index == components.count - 1
            let next: Int32
            do throws(ShimError) {
                next = try Self.step(from: current, name: name, asFile: isLast && kind == .file, path: displayPath)
            } catch {
                close(current)
                throw error
            }
            close(current)
            current = next
        }
        descriptor = current
    }

    deinit { close(descriptor) }

    /// The path mount(2) gets: the opened inode itself.
    var mountPath: String { "/proc/self/fd/\(descriptor)" }

    /// One component: opened without following a symlink, created when missing.
    private static func step(from parent: Int32, name: String, asFile: Bool, path: String) throws(ShimError) -> Int32 {
        for _ in 0..<2 {
            let flags = Self.O_PATH | O_NOFOLLOW | O_CLOEXEC | (asFile ? 0 : O_DIRECTORY)
            let fd = openat(parent, name, flags)
            if fd >= 0 {
                if asFile {
                    var info = stat()
                    guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
                        close(fd)
                        throw .failedPrecondition("mount target \(path): \(name) is not a regular file (the guest changed the shared directory?)")
                    }
                }
                return fd
            }
            switch errno {
            case ENOENT:
                if asFile {
                    let created = openat(parent, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
                    if created >= 0 {
                        close(created)
                    } else if errno != EEXIST {
                        throw .internalError("creating \(path): \(String(cString: strerror(errno)))")
                    }
                } else if mkdirat(parent, name, 0o755) != 0 && errno != EEXIST {
                    throw .internalError("creating \(path): \(String(cString: strerror(errno)))")
                }
            case ELOOP, ENOTDIR:
                throw .failedPrecondition("mount target \(path): \(name) is a symlink or not a directory (the guest changed the shared directory?)")
            default:
                throw .internalError("opening \(path): \(String(cString: strerror(errno)))")
            }
        }
        throw .failedPrecondition("mount target \(path): \(name) keeps changing (the guest changed the shared directory?)")
    }
}
