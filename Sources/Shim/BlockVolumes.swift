import Glibc
import Hypervisor
import SwiftKataOS

/// A host block device a container asks for (a `linux.devices` entry of type b: a Kubernetes block
/// volume, `volumeDevices`), which its pod's VM gets as a virtio-blk disk the guest finds by serial.
struct BlockVolume: Sendable, Equatable {
    /// Where the container sees it, e.g. /dev/xvda.
    var containerPath: String
    /// The host's node, /dev/<name>, found from the spec's numbers.
    var hostPath: String
    var major: UInt32
    var minor: UInt32
    var readOnly: Bool
    /// The virtio-blk serial (20 bytes at most): "sk" and a hash of the container and the path.
    var serial: String
}

/// Finds the host block devices of a container's spec. A privileged container's spec lists every
/// device of the host (containerd's default): none of those reach its VM, as with containerd's
/// `privileged_without_host_devices`. A device the host has mounted (or a partition or holder of it)
/// is refused: a pod's VM never gets a file system the host is using.
enum BlockVolumes {
    static let maxVolumes = 16

    static func resolve(
        spec: BundleSpec, containerID: String, sysfs: String = "/sys", mountInfo: String = "/proc/self/mountinfo"
    )
        throws(ShimError) -> [BlockVolume]
    {
        let entries = (spec.json["linux"]?["devices"]?.arrayValue ?? []).filter { $0["type"]?.stringValue == "b" }
        guard !entries.isEmpty, !spec.allowsEveryDevice else { return [] }
        guard entries.count <= maxVolumes else {
            throw .invalidArgument("container \(containerID) asks for \(entries.count) block devices; a pod VM takes at most \(maxVolumes)")
        }
        let mounted = mountedDevices(mountInfo)
        return try entries.map { entry throws(ShimError) in
            guard let path = entry["path"]?.stringValue, path.hasPrefix("/dev/"), path.utf8.count <= 128,
                let major = entry["major"]?.integerValue.flatMap(UInt32.init(exactly:)),
                let minor = entry["minor"]?.integerValue.flatMap(UInt32.init(exactly:))
            else { throw .invalidArgument("container \(containerID): a block device entry without a /dev path and numbers") }
            let host = try hostNode(major: major, minor: minor, sysfs: sysfs)
            let inUse = devicesOf(major: major, minor: minor, sysfs: sysfs).filter { mounted.contains($0.numbers) }
            if let busy = inUse.first {
                throw .failedPrecondition(
                    "container \(containerID) asks for the host's block device \(host) (\(major):\(minor)) at \(path), but the host has \(busy.name) mounted; a pod's VM is never given a file system the host is using"
                )
            }
            return BlockVolume(
                containerPath: path, hostPath: host, major: major, minor: minor, readOnly: !spec.allowsWriting(major: major, minor: minor),
                serial: "sk" + Digest.sha256Hex("\(containerID)/\(path)").prefix(18))
        }
    }

    /// /dev/<name> of the host's block device major:minor (from sysfs, checked against the node).
    static func hostNode(major: UInt32, minor: UInt32, sysfs: String) throws(ShimError) -> String {
        let uevent = readText("\(sysfs)/dev/block/\(major):\(minor)/uevent", limit: 4096) ?? ""
        guard let line = uevent.split(separator: "\n").first(where: { $0.hasPrefix("DEVNAME=") }) else {
            throw .notFound("block device \(major):\(minor) on the host")
        }
        let name = String(line.dropFirst("DEVNAME=".count))
        guard !name.isEmpty, !name.contains(".."), name.utf8.count <= 64 else { throw .notFound("block device \(major):\(minor) on the host") }
        let path = "/dev/\(name)"
        var info = stat()
        guard stat(path, &info) == 0, info.st_mode & S_IFMT == S_IFBLK, info.st_rdev == deviceNumber(major: major, minor: minor) else {
            throw .notFound("block device \(major):\(minor) at \(path) on the host")
        }
        return path
    }

    /// Linux's dev_t of major:minor (glibc's makedev, a macro Swift does not see).
    static func deviceNumber(major: UInt32, minor: UInt32) -> dev_t {
        let major = UInt64(major)
        let minor = UInt64(minor)
        return dev_t(((major & 0xffff_f000) << 32) | ((major & 0xfff) << 8) | ((minor & 0xffff_ff00) << 12) | (minor & 0xff))
    }

    /// The device and what shares its data: its partitions and its holders (device-mapper, md).
    static func devicesOf(major: UInt32, minor: UInt32, sysfs: String) -> [(name: String, numbers: String)] {
        let directory = "\(sysfs)/dev/block/\(major):\(minor)"
        var found = [(name: "\(major):\(minor)", numbers: "\(major):\(minor)")]
        let children = directoryEntries(directory).prefix(256) + directoryEntries("\(directory)/holders").prefix(256).map { "holders/\($0)" }
        for child in children {
            if let numbers = readText("\(directory)/\(child)/dev", limit: 64)?.trimmingWhitespace(), !numbers.isEmpty {
                found.append((name: String(child.split(separator: "/").last ?? ""), numbers: numbers))
            }
        }
        return found
    }

    /// major:minor of every mounted file system's device (mountinfo's third field).
    static func mountedDevices(_ mountInfo: String) -> Set<String> {
        Set(
            (readText(mountInfo, limit: 4 << 20) ?? "").split(separator: "\n").compactMap { line in
                let fields = line.split(separator: " ", maxSplits: 3)
                return fields.count > 2 ? String(fields[2]) : nil
            })
    }
}

extension BundleSpec {
    /// The device cgroup allows every device (a privileged container's spec).
    var allowsEveryDevice: Bool {
        (json["linux"]?["resources"]?["devices"]?.arrayValue ?? []).contains { rule in
            rule["allow"]?.boolValue == true && (rule["type"]?.stringValue ?? "a") == "a" && rule["major"] == nil && rule["minor"] == nil
                && (rule["access"]?.stringValue ?? "rwm").contains("w")
        }
    }

    /// Whether the device cgroup lets the container write the block device major:minor.
    func allowsWriting(major: UInt32, minor: UInt32) -> Bool {
        (json["linux"]?["resources"]?["devices"]?.arrayValue ?? []).contains { rule in
            rule["allow"]?.boolValue == true && ["b", "a"].contains(rule["type"]?.stringValue ?? "a")
                && (rule["major"]?.integerValue).map { $0 == Int64(major) } ?? true
                && (rule["minor"]?.integerValue).map { $0 == Int64(minor) } ?? true
                && (rule["access"]?.stringValue ?? "rwm").contains("w")
        }
    }
}
