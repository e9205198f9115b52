import Glibc
import Hypervisor

/// Host mounts the shim makes for a pod: containerd's rootfs mounts and shared bind mounts under the
/// pod's shared directory, and their removal.
enum HostMounts {
    /// A mount as containerd hands it over (`containerd.types.Mount`).
    struct Spec: Sendable, Equatable {
        var type: String
        var source: String
        var options: [String]
    }

    private static let flagOptions: [String: (set: Bool, flag: UInt)] = [
        "ro": (true, UInt(MS_RDONLY)), "rw": (false, UInt(MS_RDONLY)),
        "nosuid": (true, UInt(MS_NOSUID)), "suid": (false, UInt(MS_NOSUID)),
        "nodev": (true, UInt(MS_NODEV)), "dev": (false, UInt(MS_NODEV)),
        "noexec": (true, UInt(MS_NOEXEC)), "exec": (false, UInt(MS_NOEXEC)),
        "sync": (true, UInt(MS_SYNCHRONOUS)), "async": (false, UInt(MS_SYNCHRONOUS)),
        "noatime": (true, UInt(MS_NOATIME)), "atime": (false, UInt(MS_NOATIME)),
        "nodiratime": (true, UInt(MS_NODIRATIME)), "relatime": (true, UInt(MS_RELATIME)),
        "strictatime": (true, UInt(MS_STRICTATIME)),
        "bind": (true, UInt(MS_BIND)), "rbind": (true, UInt(MS_BIND | MS_REC)),
        "defaults": (false, 0),
    ]

    /// Mounts `mounts` in order onto `relative` below the pod's shared directory `root` (containerd's
    /// rootfs: usually one overlay).
    static func mountRootfs(_ mounts: [Spec], root: String, relative: String) throws(ShimError) {
        let target = try SharedMountTarget(root: root, relative: relative, kind: .directory)
        for entry in mounts {
            var flags: UInt = 0
            var data: [String] = []
            for option in entry.options {
                if let known = flagOptions[option] {
                    if known.set { flags |= known.flag } else { flags &= ~known.flag }
                } else {
                    data.append(option)
                }
            }
            let dataString = data.joined(separator: ",")
            guard dataString.utf8.count < 4096 else {
                throw .invalidArgument("rootfs mount options are longer than a page (\(dataString.utf8.count) bytes)")
            }
            let type = entry.type == "bind" ? nil : entry.type
            let result = dataString.withCString { dataPointer in
                mount(entry.source, target.mountPath, type, flags, dataString.isEmpty ? nil : dataPointer)
            }
            guard result == 0 else {
                throw .internalError("mounting the rootfs (\(entry.type) \(entry.source)) on \(target.displayPath): \(String(cString: strerror(errno)))")
            }
            if flags & UInt(MS_BIND) != 0 && flags & UInt(MS_RDONLY) != 0 {
                _ = mount(nil, target.mountPath, nil, UInt(MS_BIND | MS_REMOUNT | MS_RDONLY), nil)
            }
        }
    }

    /// Bind-mounts `source` (file or directory) at `relative` below the pod's shared directory `root`,
    /// creating the target. A read-only bind is made read-only at `staging` (a path of the pod's the
    /// guest cannot reach) first and then bound into place, so no step goes through a path the guest
    /// could have changed.
    static func bind(_ source: String, root: String, relative: String, readOnly: Bool, staging: String) throws(ShimError) {
        var info = stat()
        guard stat(source, &info) == 0 else {
            throw .invalidArgument("bind mount source \(source): \(String(cString: strerror(errno)))")
        }
        let isDirectory = (info.st_mode & S_IFMT) == S_IFDIR
        let target = try SharedMountTarget(root: root, relative: relative, kind: isDirectory ? .directory : .file)
        var from = source
        if readOnly {
            try makeReadOnlyStage(of: source, at: staging, isDirectory: isDirectory)
            from = staging
        }
        defer { if readOnly { removeStage(staging, isDirectory: isDirectory) } }
        guard mount(from, target.mountPath, nil, UInt(MS_BIND | MS_REC), nil) == 0 else {
            throw .internalError("bind-mounting \(source) at \(target.displayPath): \(String(cString: strerror(errno)))")
        }
    }

    private static func makeReadOnlyStage(of source: String, at staging: String, isDirectory: Bool) throws(ShimError) {
        removeStage(staging, isDirectory: isDirectory)
        if isDirectory {
            guard mkdir(staging, 0o700) == 0 else { throw .internalError("creating \(staging): \(String(cString: strerror(errno)))") }
        } else {
            let fd = open(staging, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw .internalError("creating \(staging): \(String(cString: strerror(errno)))") }
            close(fd)
        }
        guard mount(source, staging, nil, UInt(MS_BIND | MS_REC), nil) == 0 else {
            let reason = String(cString: strerror(errno))
            removeStage(staging, isDirectory: isDirectory)
            throw .internalError("bind-mounting \(source) at \(staging): \(reason)")
        }
        guard mount(nil, staging, nil, UInt(MS_BIND | MS_REMOUNT | MS_RDONLY), nil) == 0 else {
            let reason = String(cString: strerror(errno))
            removeStage(staging, isDirectory: isDirectory)
            throw .internalError("making the bind mount of \(source) read-only: \(reason)")
        }
    }

    private static func removeStage(_ staging: String, isDirectory: Bool) {
        while umount2(staging, Int32(MNT_DETACH) | Int32(UMOUNT_NOFOLLOW)) == 0 {}
        if isDirectory { rmdir(staging) } else { unlink(staging) }
    }

    /// Makes `directory` a mount point in a shared peer group, so mounts made below it later also
    /// appear in the VM's file server (virtiofsd, or QEMU for 9p), which runs in a mount namespace
    /// copied from ours when the VM starts.
    static func makeSharedMountPoint(_ directory: String) throws(ShimError) {
        guard mount(directory, directory, nil, UInt(MS_BIND), nil) == 0,
              mount(nil, directory, nil, UInt(MS_SHARED), nil) == 0
        else {
            throw .internalError("making \(directory) a shared mount point: \(String(cString: strerror(errno)))")
        }
    }

    /// Every mount point at or below `path`, deepest first.
    static func mountPoints(under path: String) -> [String] {
        guard let bytes = readFile("/proc/self/mountinfo", limit: 16 << 20) else { return [] }
        var points: [String] = []
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count > 4 else { continue }
            let point = unescapeOctal(String(fields[4]))
            if point == path || point.hasPrefix(path + "/") { points.append(point) }
        }
        // Later mounts (and deeper ones) go first; reversed mountinfo order unmounts stacks top-down.
        return points.reversed()
    }

    /// Detaches every mount at or below `path`; returns the ones that would not go.
    @discardableResult
    static func unmountAll(under path: String) -> [String] {
        var failed: [String] = []
        for point in mountPoints(under: path) where umount2(point, Int32(MNT_DETACH) | Int32(UMOUNT_NOFOLLOW)) != 0 && errno != EINVAL && errno != ENOENT {
            failed.append("\(point): \(String(cString: strerror(errno)))")
        }
        return failed
    }

    /// mountinfo escapes space, tab, newline and backslash as \ooo.
    static func unescapeOctal(_ text: String) -> String {
        guard text.contains("\\") else { return text }
        var bytes: [UInt8] = []
        let utf8 = Array(text.utf8)
        var index = 0
        while index < utf8.count {
            if utf8[index] == UInt8(ascii: "\\"), index + 3 < utf8.count,
               let value = UInt8(String(decoding: utf8[(index + 1)...(index + 3)], as: UTF8.self), radix: 8) {
                bytes.append(value)
                index += 4
            } else {
                bytes.append(utf8[index])
                index += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Removes `path` and everything below it without following symlinks or crossing into mounts
    /// (call `unmountAll` first). Missing paths are fine.
    static func removeTree(_ path: String) {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        if (info.st_mode & S_IFMT) == S_IFDIR {
            for name in directoryEntries(path) { removeTree("\(path)/\(name)") }
            rmdir(path)
        } else {
            unlink(path)
        }
    }
}
