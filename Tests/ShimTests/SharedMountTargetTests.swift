import Glibc
import SwiftKataOS
import Testing

@testable import Shim

/// The guest can write to the shared directory: a symlink it plants must never redirect a host mount.
@Suite(.serialized) struct SharedMountTargetTests {
    let root: String
    let outside: String

    init() throws {
        var template = Array("/tmp/swiftkata-share-test-XXXXXX".utf8CString)
        let base = String(cString: try #require(mkdtemp(&template)))
        root = "\(base)/shared"
        outside = "\(base)/host-secret"
        mkdir(root, 0o755)
        mkdir(outside, 0o755)
    }

    func cleanUp() {
        _ = HostMounts.removePodDirectory(String(root.dropLast("/shared".count)))
    }

    @Test func plantedDirectorySymlinkIsRefusedAndNothingIsMountedOutside() throws {
        defer { cleanUp() }
        mkdir("\(root)/c1", 0o755)
        symlink(outside, "\(root)/c1/mounts")
        #expect(throws: ShimError.self) {
            try HostMounts.bind("/usr/share", root: root, relative: "c1/mounts/0", readOnly: false)
        }
        #expect(MountTable.mountPoints(under: outside).isEmpty)
        #expect(access("\(outside)/0", F_OK) != 0, "nothing was created through the symlink")
    }

    @Test func plantedFileSymlinkIsRefused() throws {
        defer { cleanUp() }
        mkdir("\(root)/c1", 0o755)
        mkdir("\(root)/c1/mounts", 0o755)
        close(open("\(outside)/hosts", O_WRONLY | O_CREAT, 0o644))
        symlink("\(outside)/hosts", "\(root)/c1/mounts/0")
        #expect(throws: ShimError.self) {
            try HostMounts.bind("/etc/hostname", root: root, relative: "c1/mounts/0", readOnly: true)
        }
        #expect(MountTable.mountPoints(under: outside).isEmpty)
    }

    /// A read-only volume whose source has a submount (a Secret under a hostPath, say): the
    /// submount is read-only in the share as well, and every share is nosuid and nodev.
    @Test func readOnlyBindIsReadOnlyDownToSubmountsAndNosuidNodev() throws {
        defer { cleanUp() }
        let source = "\(outside)/data"
        mkdir(source, 0o755)
        mkdir("\(source)/secret", 0o755)
        #expect(mount("tmpfs", "\(source)/secret", "tmpfs", 0, "size=1m") == 0)
        defer { umount2("\(source)/secret", Int32(MNT_DETACH)) }
        try HostMounts.bind(source, root: root, relative: "c1/mounts/3", readOnly: true)
        #expect(MountTable.mountPoints(under: root) == ["\(root)/c1/mounts/3/secret", "\(root)/c1/mounts/3"])
        for directory in ["c1/mounts/3", "c1/mounts/3/secret"] {
            let fd = open("\(root)/\(directory)/new-file", O_WRONLY | O_CREAT, 0o644)
            let failure = errno
            if fd >= 0 { close(fd) }
            #expect(fd < 0 && failure == EROFS, "\(directory) is writable")
            var info = statvfs()  // f_flag: ST_NOSUID 2, ST_NODEV 4
            #expect(statvfs("\(root)/\(directory)", &info) == 0 && info.f_flag & 6 == 6, "\(directory) allows setuid or devices")
        }
        try HostMounts.bind(source, root: root, relative: "c1/mounts/4", readOnly: false)
        let writable = open("\(root)/c1/mounts/4/new-file", O_WRONLY | O_CREAT, 0o644)
        #expect(writable >= 0)
        close(writable)
    }

    /// A volume whose source is a shared mount (what CRI asks for HostToContainer): what the host
    /// mounts below it later reaches the pod's copy, and removing the copy leaves the host's mounts.
    @Test func aSharedSourcesLaterMountsReachTheCopyAndTheCopysRemovalLeavesThem() throws {
        defer { cleanUp() }
        let source = "\(outside)/propagating"
        mkdir(source, 0o755)
        mkdir("\(source)/later", 0o755)
        #expect(mount(source, source, "", UInt(MS_BIND), nil) == 0)
        defer { umount2(source, Int32(MNT_DETACH)) }
        #expect(mount("", source, "", UInt(MS_SHARED | MS_REC), nil) == 0)
        try HostMounts.bind(source, root: root, relative: "c1/mounts/0", readOnly: false)
        #expect(mount("tmpfs", "\(source)/later", "tmpfs", 0, "size=1m") == 0)
        defer { umount2("\(source)/later", Int32(MNT_DETACH)) }
        #expect(MountTable.mountPoints(under: root).contains("\(root)/c1/mounts/0/later"), "the later mount did not reach the copy")

        let left = HostMounts.removeShare("c1", sharedDirectory: root)
        #expect(left.isEmpty, "\(left)")
        #expect(MountTable.mountPoints(under: outside).contains("\(source)/later"), "removing the copy unmounted the host's mount")
    }

    /// A container's Delete while the guest swaps its share's directory for a symlink to the host:
    /// the shares go, the host's files stay.
    @Test func removingAShareDoesNotFollowASymlinkTheGuestPlanted() throws {
        defer { cleanUp() }
        close(open("\(outside)/passwd", O_WRONLY | O_CREAT, 0o644))
        try HostMounts.bind("/usr/share", root: root, relative: "c1/mounts/0", readOnly: true)
        mkdir("\(root)/c1/rootfs", 0o755)
        symlink(outside, "\(root)/c1/rootfs/etc")
        rename("\(root)/c1/mounts", "\(root)/c1/moved")
        symlink(outside, "\(root)/c1/mounts")

        let left = HostMounts.removeShare("c1", sharedDirectory: root)
        #expect(left.isEmpty, "\(left)")
        #expect(access("\(outside)/passwd", F_OK) == 0, "a host file was removed through the guest's symlink")
        #expect(MountTable.mountPoints(under: root).isEmpty)
        #expect(access("\(root)/c1", F_OK) != 0)
    }
}

/// libvirt chowns a running domain's kernel to QEMU's user; the kernel domains get is a read-only
/// mount, where that chown fails and the file stays root's.
@Suite(.serialized) struct ReadOnlyKernelTests {
    @Test func theKernelPathIsAReadOnlyMountSharedByEveryShim() throws {
        var template = Array("/tmp/swiftkata-kernel-test-XXXXXX".utf8CString)
        let base = String(cString: try #require(mkdtemp(&template)))
        defer {
            let left = HostMounts.removePodDirectory(base)
            #expect(left.isEmpty, "\(left)")
            #expect(MountTable.mountPoints(under: base).isEmpty, "the kernel's mount outlived the test")
        }
        let kernel = "\(base)/vmlinux"
        close(open(kernel, O_WRONLY | O_CREAT, 0o644))
        let path = try ReadOnlyKernel.path(for: kernel, stateDirectory: "\(base)/state")
        #expect(path.hasPrefix("\(base)/state/guest/vmlinux-"))
        #expect(try ReadOnlyKernel.path(for: kernel, stateDirectory: "\(base)/state") == path)
        #expect(MountTable.mountPoints(under: "\(base)/state").count == 1)
        #expect(chown(path, 64055, 64055) != 0 && errno == EROFS, "libvirt's chown would succeed")
        var info = stat()
        #expect(stat(kernel, &info) == 0 && info.st_uid == 0)
    }
}
