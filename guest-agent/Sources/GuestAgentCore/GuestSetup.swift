import Glibc
import SwiftKataOS

/// The file systems PID 1 mounts before anything else runs.
public enum GuestSetup {
    public struct MountError: Error, CustomStringConvertible {
        var target: String
        var errno: Int32
        public var description: String { "mount \(target): \(String(cString: strerror(errno)))" }
    }

    private struct Entry {
        var source: String
        var target: String
        var type: String
        var flags: UInt
        var data: String?
    }

    private static let nosuid = UInt(MS_NOSUID), nodev = UInt(MS_NODEV), noexec = UInt(MS_NOEXEC)

    private static let entries: [Entry] = [
        Entry(source: "proc", target: "/proc", type: "proc", flags: nosuid | nodev | noexec),
        Entry(source: "sysfs", target: "/sys", type: "sysfs", flags: nosuid | nodev | noexec),
        Entry(source: "devtmpfs", target: "/dev", type: "devtmpfs", flags: nosuid, data: "mode=0755"),
        Entry(source: "devpts", target: "/dev/pts", type: "devpts", flags: nosuid | noexec, data: "newinstance,ptmxmode=0666,mode=0620,gid=5"),
        Entry(source: "shm", target: "/dev/shm", type: "tmpfs", flags: nosuid | nodev, data: "mode=1777"),
        Entry(source: "tmpfs", target: "/run", type: "tmpfs", flags: nosuid | nodev, data: "mode=0755"),
        Entry(source: "tmpfs", target: "/tmp", type: "tmpfs", flags: nosuid | nodev, data: "mode=1777"),
        Entry(source: "cgroup2", target: "/sys/fs/cgroup", type: "cgroup2", flags: nosuid | nodev | noexec, data: "nsdelegate"),
    ]

    /// Mounts /proc, /sys, /dev, /dev/pts, /dev/shm, /run, /tmp and the cgroup v2 hierarchy.
    public static func mountEssentials() throws {
        for entry in entries {
            mkdir(entry.target, 0o755)
            let result =
                entry.data.map { data in mount(entry.source, entry.target, entry.type, entry.flags, data) }
                ?? mount(entry.source, entry.target, entry.type, entry.flags, nil)
            if result != 0 && errno != EBUSY {
                throw MountError(target: entry.target, errno: errno)
            }
        }
        // /dev/ptmx must point at this devpts instance.
        unlink("/dev/ptmx")
        symlink("pts/ptmx", "/dev/ptmx")
        // Give containers cgroup controllers: enable every available one for child groups.
        enableCgroupControllers(at: "/sys/fs/cgroup")
    }

    /// Writes "+cpu +memory +pids ..." into cgroup.subtree_control for the controllers present.
    static func enableCgroupControllers(at path: String) {
        guard let available = readText("\(path)/cgroup.controllers") else { return }
        let request = available.split(whereSeparator: { $0 == " " || $0 == "\n" }).map { "+\($0)" }.joined(separator: " ")
        _ = writeSmallFile("\(path)/cgroup.subtree_control", request)
    }
}

extension String {
    /// The NUL-terminated message a C helper wrote into `buffer`.
    public init(cMessage buffer: [CChar]) {
        self.init(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Writes one line to the console (fd 2), with or without logging set up.
public func consoleLine(_ text: String) {
    let bytes = Array((text + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}
