import Hypervisor
import SwiftKataOS

/// What a pod VM is built from: the guest kernel and image, and virtiofsd for the shared directory.
extension HostChecks {
    func virtiofsd() -> CheckResult {
        let path = configuration.hypervisor.virtiofsd
        let present = host.canAccess(path, .execute)
        switch configuration.hypervisor.sharedFilesystem {
        case .virtioFS:
            if present { return .pass("virtiofsd", path) }
            return .fail(
                "virtiofsd", "\(path) not found (shared_fs = \"virtio-fs\")",
                fix: "apt-get install qemu-system-x86, or \(setting("shared_fs = \"9p\"", in: "hypervisor"))")
        case .ninep:
            if present { return .pass("virtiofsd", "\(path) (unused: shared_fs = \"9p\")") }
            return .warn(
                "virtiofsd", "\(path) not found (not needed: shared_fs = \"9p\")",
                fix: "apt-get install qemu-system-x86 to use the faster shared_fs = \"virtio-fs\"")
        }
    }

    func guestKernel() -> CheckResult {
        let path = configuration.hypervisor.kernel
        guard let head = host.readFile(path, 0x210) else { return unreadable("guest-kernel", path, key: "kernel") }
        guard let format = KernelFormat(header: head) else {
            return .fail(
                "guest-kernel", "\(path) is neither an ELF vmlinux nor a bzImage",
                fix: "make guest, then \(setting("kernel = \"<kernel dir>/vmlinux\"", in: "hypervisor"))")
        }
        return .pass("guest-kernel", "\(path) (\(format.rawValue))")
    }

    func guestImage() -> CheckResult {
        let path = configuration.hypervisor.image
        guard let head = host.readFile(path, GuestImage.headerLength) else { return unreadable("guest-image", path, key: "image") }
        guard !head.isEmpty else {
            return .fail("guest-image", "\(path) is empty", fix: "make install (or make guest)")
        }
        guard let image = GuestImage(path: path, header: head) else {
            return .fail(
                "guest-image", "\(path) is neither an ext4 root file system nor a cpio initramfs",
                fix: "make install (or make guest, then \(setting("image = \"<image dir>/swiftkata-rootfs.img\"", in: "hypervisor")))")
        }
        return .pass("guest-image", "\(path) (\(image.formatName))")
    }

    /// The warm pool: off, or how many VMs wait for pods (in every pool under the state directory).
    func warmPool() -> CheckResult {
        let size = configuration.pool.size
        guard size > 0 else { return .pass("warm-pool", "off: every pod boots its own VM (\(setting("size = N", in: "pool")) keeps N booted ahead)") }
        let root = "\(configuration.runtime.stateDirectory)/pool"
        var waiting = 0
        var booting = 0
        for key in host.listDirectory(root) ?? [] where !key.hasPrefix(".") {
            for name in host.listDirectory("\(root)/\(key)") ?? [] {
                if name.hasPrefix(".booting-") { booting += 1 } else if !name.hasPrefix(".") { waiting += 1 }
            }
        }
        return .pass(
            "warm-pool", "size \(size): \(waiting) VM\(waiting == 1 ? "" : "s") waiting, \(booting) booting in \(root) (the pool fills after the first pod)")
    }

    /// A missing or unreadable kernel or image.
    private func unreadable(_ name: String, _ path: String, key: String) -> CheckResult {
        if host.canAccess(path, []) {
            return .fail(name, "\(path) is not readable", fix: "chmod 644 \(path)")
        }
        return .fail(
            name, "\(path) not found",
            fix: "make install (or make guest, then \(setting("\(key) = \"<path>\"", in: "hypervisor")))")
    }
}

/// How a guest kernel file is packed; QEMU boots either (an ELF vmlinux through its PVH entry).
enum KernelFormat: String {
    case elf = "ELF vmlinux"
    case bzImage = "bzImage"

    init?(header: [UInt8]) {
        if header.starts(with: [0x7f, 0x45, 0x4c, 0x46]) {
            self = .elf
        } else if header.count >= 0x206, Array(header[0x202..<0x206]) == Array("HdrS".utf8) {
            self = .bzImage
        } else {
            return nil
        }
    }
}
