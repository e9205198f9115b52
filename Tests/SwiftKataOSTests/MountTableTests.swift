import Glibc
import SwiftKataOS
import Testing

@Suite(.serialized) struct MountTableTests {
    @Test func unescapesMountinfoOctal() {
        #expect(MountTable.unescapeOctal("/run/a\\040b\\011c\\134d") == "/run/a b\tc\\d")
        #expect(MountTable.unescapeOctal("/plain") == "/plain")
    }

    @Test func detachesEveryMountBelowAPath() throws {
        let share = try Scratch("detach")
        try share.makeDirectory("c1/rootfs")
        try share.makeDirectory("c1/mounts/0")
        try share.mountTmpfs("c1/rootfs")
        try share.mountTmpfs("c1/rootfs")  // stacked
        try share.mountTmpfs("c1/mounts/0")
        #expect(MountTable.mountPoints(under: "\(share.path)/c1").count == 3)

        let failed = MountTable.detachAll(under: try OpenDirectory(path: share.path), relative: "c1")
        #expect(failed.isEmpty, "\(failed)")
        #expect(MountTable.mountPoints(under: share.path).isEmpty)
    }

    /// A guest swaps an intermediate component of a mount point's path for a symlink to another
    /// pod's directory: the walk refuses the symlink, and the other pod's mount stays.
    @Test func aSymlinkedPathComponentCannotDetachAMountElsewhere() throws {
        let share = try Scratch("detach-share")
        let otherPod = try Scratch("detach-other")
        try otherPod.makeDirectory("mounts/0")
        try otherPod.mountTmpfs("mounts/0")
        try share.makeDirectory("c1/mounts/0")
        try share.mountTmpfs("c1/mounts/0")
        // Hide our mount away and point "c1" at the other pod: mountinfo still lists c1/mounts/0.
        try share.makeDirectory("hidden")
        #expect(rename("\(share.path)/c1", "\(share.path)/hidden/c1") == 0)
        try share.symlink("c1", to: otherPod.path)
        #expect(MountTable.mountPoints(under: "\(share.path)/hidden/c1").count == 1)

        _ = MountTable.detachAll(under: try OpenDirectory(path: share.path), relative: "c1")
        #expect(MountTable.mountPoints(under: otherPod.path).count == 1, "another pod's mount was detached")
    }
}

@Suite(.serialized) struct BindMountTests {
    /// A read-only bind of a tree with a submount: the submount is read-only too, and nothing is
    /// setuid-capable or a usable device node on the host side.
    @Test func readOnlyIsRecursiveAndSetuidAndDevicesAreOff() throws {
        let scratch = try Scratch("bind")
        try scratch.makeDirectory("source/sub")
        try scratch.mountTmpfs("source/sub")
        try scratch.makeDirectory("target")
        let target = try OpenDirectory(path: "\(scratch.path)/target")
        try BindMount.attach(
            source: "\(scratch.path)/source", onto: target.descriptor, targetPath: target.path,
            attributes: [.readOnly, .noSetuid, .noDevices])

        for directory in ["target", "target/sub"] {
            let fd = open("\(scratch.path)/\(directory)/new", O_WRONLY | O_CREAT, 0o644)
            let failure = errno
            if fd >= 0 { close(fd) }
            #expect(fd < 0 && failure == EROFS, "\(directory) is writable")
            var info = statvfs()  // f_flag: ST_NOSUID 2, ST_NODEV 4
            #expect(statvfs("\(scratch.path)/\(directory)", &info) == 0)
            #expect(info.f_flag & 2 != 0 && info.f_flag & 4 != 0, "\(directory) allows setuid or devices")
        }
        #expect(MountTable.mountPoints(under: "\(scratch.path)/target").count == 2)
    }
}
