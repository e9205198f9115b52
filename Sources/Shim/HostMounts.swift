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
    /// rootfs: usually one overlay), always nosuid and nodev: the guest sees the files' modes as they
    /// are, and nothing the image or the guest put there runs setuid or opens a device on the host.
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
            flags |= UInt(MS_NOSUID | MS_NODEV)  // whatever "suid" or "dev" the options named
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

    /// Bind-mounts `source` (file or directory, with its submounts) at `relative` below the pod's
    /// shared directory `root`, creating the target. The copy is nosuid and nodev (the guest writes
    /// there as root: no setuid file or device node it makes is usable on the host) and, when
    /// `readOnly`, read-only down to every submount, all set before it appears at the target.
    static func bind(_ source: String, root: String, relative: String, readOnly: Bool) throws(ShimError) {
        var info = stat()
        guard stat(source, &info) == 0 else {
            throw .invalidArgument("bind mount source \(source): \(String(cString: strerror(errno)))")
        }
        let isDirectory = (info.st_mode & S_IFMT) == S_IFDIR
        let target = try SharedMountTarget(root: root, relative: relative, kind: isDirectory ? .directory : .file)
        let attributes: BindMount.Attributes = readOnly ? [.readOnly, .noSetuid, .noDevices] : [.noSetuid, .noDevices]
        try ShimError.system("bind-mounting \(source) at \(target.displayPath)") {
            try BindMount.attach(source: source, onto: target.descriptor, targetPath: target.displayPath, attributes: attributes)
        }
    }

    /// What the guest may store in the shared directory itself (outside the containers' rootfs and
    /// volumes, which are mounts of their own): it holds only their mount points, so a little is
    /// plenty, and a guest that writes there cannot fill the host's /run.
    static let sharedFilesystemOptions = "size=16m,nr_inodes=16384,mode=0700"

    /// Mounts a small tmpfs (nosuid, nodev, noexec; `sharedFilesystemOptions`) on `directory` and
    /// makes it a shared peer group, so mounts made below it later also appear in the VM's file
    /// server (virtiofsd, or QEMU for 9p), which runs in a mount namespace copied from ours when the
    /// VM starts. Root-only (0700): local users reach nothing of the pod's files through it.
    static func mountSharedFilesystem(_ directory: String) throws(ShimError) {
        guard mount("swiftkata-shared", directory, "tmpfs", UInt(MS_NOSUID | MS_NODEV | MS_NOEXEC), sharedFilesystemOptions) == 0 else {
            throw .internalError("mounting the pod's shared file system on \(directory): \(String(cString: strerror(errno)))")
        }
        guard mount(nil, directory, nil, UInt(MS_SHARED), nil) == 0 else {
            let reason = String(cString: strerror(errno))
            umount2(directory, Int32(MNT_DETACH))
            throw .internalError("making \(directory) a shared mount point: \(reason)")
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
    /// `removeShare`), then the rest (`vm/`), which only root and QEMU can write.
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
