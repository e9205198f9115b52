import CLinuxSys
import Glibc
import Hypervisor
import SwiftKataOS

/// The guest kernel as libvirt sees it: a read-only bind mount of the configured file under the
/// state directory. libvirt's DAC driver chowns a domain's kernel to QEMU's user while the domain
/// runs (the image disk has `relabel='no'`; a kernel cannot), so a QEMU escape could rewrite the
/// file every pod boots next. On a read-only mount that chown fails with EROFS, which libvirt
/// tolerates, and the file stays root's.
enum ReadOnlyKernel {
    /// The read-only path for `kernel`, made once per kernel file (its path, inode, size and time
    /// name the mount, so a rebuilt kernel gets a new one) and shared by every shim.
    static func path(for kernel: String, stateDirectory: String) throws(ShimError) -> String {
        var info = stat()
        guard stat(kernel, &info) == 0 else {
            throw .failedPrecondition("guest kernel \(kernel): \(String(cString: strerror(errno)))")
        }
        let identity = "\(kernel):\(info.st_dev):\(info.st_ino):\(info.st_size):\(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)"
        let directory = "\(stateDirectory)/guest"
        let target = "\(directory)/vmlinux-\(Digest.sha256Hex(identity).prefix(16))"
        if isReadOnlyMount(target) { return target }
        try ShimError.system("creating \(directory)") { try makeDirectories(directory, mode: 0o755) }
        // Shims of several pods may start at once: one makes the mount, the others find it.
        let lock = open("\(directory)/.lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard lock >= 0 else { throw .internalError("opening \(directory)/.lock: \(String(cString: strerror(errno)))") }
        defer { close(lock) }
        while flock(lock, LOCK_EX) != 0 && errno == EINTR {}
        if isReadOnlyMount(target) { return target }
        let file = open(target, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard file >= 0 else { throw .internalError("creating \(target): \(String(cString: strerror(errno)))") }
        close(file)
        let point = open(target, linux_O_PATH | O_NOFOLLOW | O_CLOEXEC)
        guard point >= 0 else { throw .internalError("opening \(target): \(String(cString: strerror(errno)))") }
        defer { close(point) }
        try ShimError.system("mounting the guest kernel read-only at \(target)") {
            try BindMount.attach(source: kernel, onto: point, targetPath: target, attributes: [.readOnly, .noSetuid, .noDevices])
        }
        return target
    }

    /// Whether `path` is a mount point mounted read-only.
    static func isReadOnlyMount(_ path: String) -> Bool {
        guard MountTable.mountPoints(under: path).contains(path) else { return false }
        var info = statvfs()
        return statvfs(path, &info) == 0 && info.f_flag & 1 != 0  // ST_RDONLY
    }
}
