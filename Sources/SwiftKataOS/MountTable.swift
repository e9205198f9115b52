import CLinuxSys
import Glibc

/// Reading this process's mount table, and detaching mounts without trusting the path to them.
public enum MountTable {
    /// Every mount point at or below `path`, later (and so deeper or stacked) mounts first.
    public static func mountPoints(under path: String) -> [String] {
        guard let bytes = readFile("/proc/self/mountinfo", limit: 16 << 20) else { return [] }
        var points: [String] = []
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count > 4 else { continue }
            let point = unescapeOctal(String(fields[4]))
            if point == path || point.hasPrefix(path + "/") { points.append(point) }
        }
        return points.reversed()
    }

    /// mountinfo escapes space, tab, newline and backslash as \ooo.
    public static func unescapeOctal(_ text: String) -> String {
        guard text.contains("\\") else { return text }
        var bytes: [UInt8] = []
        let utf8 = Array(text.utf8)
        var index = 0
        while index < utf8.count {
            if utf8[index] == UInt8(ascii: "\\"), index + 3 < utf8.count,
                let value = UInt8(String(decoding: utf8[(index + 1)...(index + 3)], as: UTF8.self), radix: 8)
            {
                bytes.append(value)
                index += 4
            } else {
                bytes.append(utf8[index])
                index += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Detaches every mount at or below `root/relative...` whose path lies inside `root`, reaching
    /// each mount point component by component from `root`'s descriptor without following a
    /// symlink, and unmounting the inode that walk found (`/proc/self/fd/N`). A guest that
    /// renames or swaps components below `root` can make a detach miss, never hit a mount outside
    /// `root`. Returns the mounts that would not go.
    @discardableResult
    public static func detachAll(under root: borrowing OpenDirectory, relative: String = "") -> [SystemError] {
        let base = relative.isEmpty ? root.path : "\(root.path)/\(relative)"
        var failed: [SystemError] = []
        for point in mountPoints(under: base) {
            let inside = point == root.path ? "" : String(point.dropFirst(root.path.count + 1))
            // Stacked mounts at one point: detach until the walk no longer ends on a mount.
            for _ in 0..<64 {
                do throws(SystemError) {
                    guard try detach(inside, below: root) else { break }
                } catch {
                    if error.errno != .noSuchFileOrDirectory && error.errno != .invalidArgument { failed.append(error) }
                    break
                }
            }
        }
        return failed
    }

    /// Detaches the top mount at `relative` below `root`; false when nothing is mounted there.
    static func detach(_ relative: String, below root: borrowing OpenDirectory) throws(SystemError) -> Bool {
        let path = relative.isEmpty ? root.path : "\(root.path)/\(relative)"
        var fd = retryingInterrupts { openat(root.descriptor, ".", linux_O_PATH | O_DIRECTORY | O_CLOEXEC) }
        guard fd >= 0 else { throw .last("openat", path: root.path) }
        // The directory the walk came from: a file mount (a bind-mounted kernel) has no "..".
        var parent: CInt = -1
        defer {
            close(fd)
            if parent >= 0 { close(parent) }
        }
        for name in relative.split(separator: "/").map(String.init) {
            guard name != ".", name != ".." else { throw SystemError("openat", path: path, errno: .invalidArgument) }
            let next = retryingInterrupts { openat(fd, name, linux_O_PATH | O_NOFOLLOW | O_CLOEXEC) }
            guard next >= 0 else { throw .last("openat", path: path) }
            if parent >= 0 { close(parent) }
            parent = fd
            fd = next
        }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .last("fstat", path: path) }
        // A symlink opened with O_PATH|O_NOFOLLOW is the link itself: nothing to unmount there.
        guard info.st_mode & S_IFMT != S_IFLNK else { return false }
        guard isMountRoot(fd, parent: parent >= 0 ? parent : nil) else { return false }
        guard umount2("/proc/self/fd/\(fd)", Int32(MNT_DETACH)) == 0 else { throw .last("umount", path: path) }
        return true
    }

    /// Whether `fd` is the root of a mount (its parent directory, `parent` or else its "..", is on
    /// another mount, or it is "/").
    static func isMountRoot(_ fd: CInt, parent known: CInt? = nil) -> Bool {
        // statx's STATX_ATTR_MOUNT_ROOT needs 5.8; the mount id from fdinfo works everywhere here.
        guard let ownID = mountID(of: fd) else { return false }
        let parent = known ?? retryingInterrupts { openat(fd, "..", linux_O_PATH | O_DIRECTORY | O_CLOEXEC) }
        guard parent >= 0 else { return false }
        defer { if known == nil { close(parent) } }
        guard let parentID = mountID(of: parent) else { return false }
        if parentID != ownID { return true }
        var own = stat(), up = stat()
        return fstat(fd, &own) == 0 && fstat(parent, &up) == 0 && own.st_ino == up.st_ino && own.st_dev == up.st_dev
    }

    /// The id of the mount `fd` is on: statx where the kernel reports it, else /proc/self/fdinfo.
    public static func mountID(of fd: CInt) -> Int? {
        var id: UInt64 = 0
        if linux_mount_id(fd, &id) == 0 { return Int(truncatingIfNeeded: id) }
        guard let text = readText("/proc/self/fdinfo/\(fd)", limit: 4096) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("mnt_id:") {
            return Int(String(line.dropFirst("mnt_id:".count).filter { $0 != " " && $0 != "\t" }))
        }
        return nil
    }
}
