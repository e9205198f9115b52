import Glibc
import SwiftKataOS

/// Disks the host attached to the VM for a container (block volumes), found by their virtio-blk
/// serial once the guest kernel has them (ACPI PCI hotplug).
enum GuestBlockDevices {
    struct Disk: Sendable, Equatable {
        /// /dev/<name> in the guest.
        var path: String
        var major: UInt32
        var minor: UInt32
    }

    /// Waits up to `timeout` for the disk with `serial`; nil if it never appears.
    static func wait(serial: String, timeout: Duration) async -> Disk? {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let disk = find(serial: serial) { return disk }
            if ContinuousClock.now >= deadline { return nil }
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    /// The disk whose /sys/block/<name>/serial is `serial`.
    static func find(serial: String) -> Disk? {
        for name in directoryEntries("/sys/block") {
            guard name.hasPrefix("vd"), readText("/sys/block/\(name)/serial", limit: 64)?.trimmingWhitespace() == serial,
                let numbers = readText("/sys/block/\(name)/dev", limit: 32)?.trimmingWhitespace().split(separator: ":"), numbers.count == 2,
                let major = UInt32(numbers[0]), let minor = UInt32(numbers[1])
            else { continue }
            return Disk(path: "/dev/\(name)", major: major, minor: minor)
        }
        return nil
    }
}
