import Glibc
import SwiftKataOS
import Testing

/// The QEMU user's access, decided from the real mode bits of a real file.
@Suite struct QEMUUserAccessTests {
    @Test func modeBitsDecideForTheQEMUUser() throws {
        guard getpwnam("libvirt-qemu") != nil else { return }  // libvirt-daemon-system creates the user
        let path = "/tmp/swiftkata-qemu-access-\(getpid())"
        close(open(path, O_WRONLY | O_CREAT, 0o600))
        defer { unlink(path) }
        #expect(userMayReadAndWrite("libvirt-qemu", path) == false)
        chown(path, 0, getgrnam("kvm")?.pointee.gr_gid ?? 0)
        chmod(path, 0o660)
        #expect(userMayReadAndWrite("libvirt-qemu", path) == true)
        #expect(userMayReadAndWrite("libvirt-qemu", "/nonexistent") == nil)
    }
}
