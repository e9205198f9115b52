import Foundation
import Testing

@testable import Shim

/// Host block devices of a container's spec (`BlockVolumes`), against a fake sysfs and mount table.
@Suite struct BlockVolumesTests {
    let root: URL

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("swiftkata-block-\(UUID().uuidString)")
        // 7:3 is the host's /dev/loop3 (a real node on every Linux host has those numbers or none:
        // the test checks the sysfs lookup and the refusals, the node check only where loop3 exists).
        try write("dev/block/7:3/uevent", "MAJOR=7\nMINOR=3\nDEVNAME=loop3\nDEVTYPE=disk\n")
        try write("dev/block/7:3/loop3p1/dev", "259:9\n")
        try write("dev/block/7:3/holders/dm-4/dev", "253:4\n")
        try write("mountinfo", "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n")
    }

    func write(_ path: String, _ text: String) throws {
        let url = root.appendingPathComponent(path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try text.write(to: url, atomically: true, encoding: .utf8)
    }

    func spec(devices: String, rules: String) throws -> BundleSpec {
        try BundleSpec(bytes: Array(#"{"linux":{"devices":[\#(devices)],"resources":{"devices":[\#(rules)]}}}"#.utf8))
    }

    @Test func aPartitionOrHolderOfTheDeviceIsWhatTheHostMayHaveMounted() {
        let sysfs = root.path
        let shared = BlockVolumes.devicesOf(major: 7, minor: 3, sysfs: sysfs).map(\.numbers).sorted()
        #expect(shared == ["253:4", "259:9", "7:3"])
        #expect(BlockVolumes.mountedDevices(root.appendingPathComponent("mountinfo").path) == ["8:1"])
    }

    @Test func aPrivilegedContainersHostDevicesStayOnTheHost() throws {
        let privileged = try spec(devices: #"{"path":"/dev/sda","type":"b","major":8,"minor":0}"#, rules: #"{"allow":true,"access":"rwm"}"#)
        #expect(privileged.allowsEveryDevice)
        #expect(try BlockVolumes.resolve(spec: privileged, containerID: "c1", sysfs: root.path) == [])
    }

    @Test func aDeviceTheHostMountedIsRefusedByName() throws {
        try write("mountinfo", "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n40 22 259:9 / /mnt rw - ext4 /dev/loop3p1 rw\n")
        let asked = try spec(
            devices: #"{"path":"/dev/xvda","type":"b","major":7,"minor":3}"#,
            rules: #"{"allow":false,"access":"rwm"},{"allow":true,"type":"b","major":7,"minor":3,"access":"rwm"}"#)
        #expect(!asked.allowsEveryDevice)
        #expect(asked.allowsWriting(major: 7, minor: 3))
        var loop3 = stat()
        guard stat("/dev/loop3", &loop3) == 0, loop3.st_rdev == BlockVolumes.deviceNumber(major: 7, minor: 3) else { return }  // no loop3 node on this host
        let error = #expect(throws: ShimError.self) {
            try BlockVolumes.resolve(spec: asked, containerID: "c1", sysfs: root.path, mountInfo: root.appendingPathComponent("mountinfo").path)
        }
        #expect("\(error.map { String(describing: $0) } ?? "")".contains("loop3p1 mounted"))
    }

    @Test func readOnlyUnlessTheDeviceRuleAllowsWriting() throws {
        let readOnly = try spec(devices: "", rules: #"{"allow":false,"access":"rwm"},{"allow":true,"type":"b","major":7,"minor":3,"access":"r"}"#)
        #expect(!readOnly.allowsWriting(major: 7, minor: 3))
    }
}
