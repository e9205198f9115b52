import Foundation
import Hypervisor
import SwiftKataOS
import Testing

/// The guest image's format is recognised from its first bytes, and each format boots its own way.
@Suite("Guest image")
struct GuestImageTests {
    static func ext4Header() -> [UInt8] {
        var header = [UInt8](repeating: 0, count: GuestImage.headerLength)
        header[1080] = 0x53
        header[1081] = 0xEF
        return header
    }

    @Test func ext4IsARootDisk() {
        let image = GuestImage(path: "/i/rootfs.img", header: Self.ext4Header())
        #expect(image == .rootDisk(path: "/i/rootfs.img"))
        #expect(image?.kernelParameters == "root=/dev/vda ro rootfstype=ext4")
        #expect(image?.kernelCommandLine("console=ttyS0") == "console=ttyS0 root=/dev/vda ro rootfstype=ext4")
        #expect(
            image?.qemuArguments == [
                "-drive", "file=/i/rootfs.img,if=none,id=guestroot,format=raw,readonly=on",
                "-device", "virtio-blk-pci,drive=guestroot",
            ])
    }

    @Test(arguments: [Array("070701".utf8), Array("070702".utf8), [0x1F, 0x8B, 8], [0x28, 0xB5, 0x2F, 0xFD], [0x02, 0x21, 0x4C, 0x18]])
    func initramfsFormats(_ magic: [UInt8]) {
        let image = GuestImage(path: "/i/initrd.img", header: magic + [UInt8](repeating: 0, count: 100))
        #expect(image == .initrd(path: "/i/initrd.img"))
        #expect(image?.kernelCommandLine("console=ttyS0") == "console=ttyS0")
        #expect(image?.qemuArguments == ["-initrd", "/i/initrd.img"])
    }

    @Test func otherFilesAreRefused() {
        #expect(GuestImage(path: "/x", header: Array("#!/bin/sh\n".utf8)) == nil)
        #expect(GuestImage(path: "/x", header: []) == nil)
        // The ext4 magic needs the whole superblock prefix.
        #expect(GuestImage(path: "/x", header: Array(Self.ext4Header().prefix(1081))) == nil)
    }

    @Test func commasInADiskPathAreEscapedForQEMU() {
        #expect(GuestImage.rootDisk(path: "/a,b/root.img").qemuArguments[1] == "file=/a,,b/root.img,if=none,id=guestroot,format=raw,readonly=on")
    }

    @Test func loadNamesTheFileAndTheReason() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("swiftkata-guest-image-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let script = directory.appendingPathComponent("not-an-image")
        try Data("#!/bin/sh\n".utf8).write(to: script)
        #expect(throws: GuestImageError.unknownFormat(path: script.path)) { try GuestImage.load(path: script.path) }
        #expect(
            throws: GuestImageError.unreadable(
                path: "\(directory.path)/missing", reason: SystemError("open", path: "\(directory.path)/missing", errno: .noSuchFileOrDirectory))
        ) {
            try GuestImage.load(path: "\(directory.path)/missing")
        }
        let disk = directory.appendingPathComponent("root.img")
        try Data(Self.ext4Header() + [UInt8](repeating: 0, count: 4096)).write(to: disk)
        #expect(try GuestImage.load(path: disk.path) == .rootDisk(path: disk.path))
        #expect(GuestImageError.unknownFormat(path: "/x").description == "guest image /x is neither an ext4 root file system nor a cpio initramfs")
    }
}
