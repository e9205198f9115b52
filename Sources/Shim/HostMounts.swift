import Glibc
import Hypervisor
import SwiftKataOS

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

    /// Undoes a container's shares: detaches every mount below `shared/<relative>` and removes that
    /// tree, both by descriptor from the pod's shared directory, which the guest cannot replace.
    /// Whatever the guest renamed or swapped meanwhile, nothing outside the shared directory's own
    /// file system is unmounted or removed. Returns what was left behind.
    static func removeShare(_ relative: String, sharedDirectory: String) -> [String] {
        let shared: OpenDirectory
        do { shared = try OpenDirectory(path: sharedDirectory) } catch {
            return error.errno == .noSuchFileOrDirectory ? [] : ["\(error)"]
        }
        var left = MountTable.detachAll(under: shared, relative: relative).map(\.description)
        left += shared.removeTree(relative).map(\.description)
        return left
    }

    /// Removes a pod's host directory: the shared file system's mounts and files by descriptor (as
    /// `removeShare`), then the rest (`vm/`, the staging path), which only root and QEMU can write.
    static func removePodDirectory(_ directory: String) -> [String] {
        let parent = String(directory[..<(directory.lastIndex(of: "/") ?? directory.startIndex)])
        let name = String(directory[directory.index(after: directory.lastIndex(of: "/") ?? directory.startIndex)...])
        let pods: OpenDirectory
        do { pods = try OpenDirectory(path: parent.isEmpty ? "/" : parent) } catch {
            return error.errno == .noSuchFileOrDirectory ? [] : ["\(error)"]
        }
        var left: [String] = []
        do {
            let pod = try pods.openDirectory(name)
            left += MountTable.detachAll(under: pod).map(\.description)
        } catch {
            if error.errno != .noSuchFileOrDirectory { left.append("\(error)") }
            return left
        }
        left += pods.removeTree(name).map(\.description)
        return left
    }

    /// Detaches every mount at or below `path`, a path only root can change (a bundle's rootfs).
    @discardableResult
    static func unmountAll(under path: String) -> [String] {
        guard let directory = try? OpenDirectory(path: path) else { return [] }
        return MountTable.detachAll(under: directory).map(\.description)
    }
}
