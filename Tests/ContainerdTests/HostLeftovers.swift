import Foundation

/// What a pod of the test namespace may leave on the host: domains, QEMU and virtiofsd processes,
/// shim daemons, mounts and pod directories. Each entry names the thing left behind.
enum HostLeftovers {
    static let podsDirectory = "/run/swiftkata/pods"

    /// `shimSockets`: the socket paths of shims that must be gone (`PrivateContainerd.shimSocket`).
    static func find(namespace: String, shimSockets: [String] = []) -> [String] {
        var found: [String] = []
        found += shimSockets.filter { FileManager.default.fileExists(atPath: $0) }.map { "shim socket \($0)" }
        let domainPrefix = "swiftkata-\(namespace)-"
        let domains = PrivateContainerd.run("/usr/bin/virsh", ["-c", "qemu:///system", "list", "--name"]).output
        found += domains.split(separator: "\n").filter { $0.hasPrefix(domainPrefix) }.map { "domain \($0)" }
        for (pid, commandLine) in processes() {
            if commandLine.contains("guest=\(domainPrefix)") { found.append("qemu pid \(pid)") }
            if commandLine.contains("virtiofsd") && commandLine.contains(podsDirectory) { found.append("virtiofsd pid \(pid)") }
            if commandLine.contains("containerd-shim-swiftkata-v2") && commandLine.contains(namespace) { found.append("shim pid \(pid): \(commandLine)") }
            if commandLine.hasPrefix("swiftkata-anchor ") { found.append("container anchor pid \(pid)") }
        }
        let mountinfo = String(decoding: procFile("/proc/self/mountinfo"), as: UTF8.self)
        found += mountinfo.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            return fields.count > 4 && fields[4].hasPrefix(podsDirectory + "/") ? "mount \(fields[4])" : nil
        }
        let links = (try? FileManager.default.contentsOfDirectory(atPath: "/sys/class/net")) ?? []
        found += links.filter { $0.hasPrefix("sktap") }.map { "tap device \($0)" }
        // libvirt's per-domain logs (QEMU's, virtiofsd's) go with the domain.
        let libvirtLogs = (try? FileManager.default.contentsOfDirectory(atPath: "/var/log/libvirt/qemu")) ?? []
        found += libvirtLogs.filter { $0.hasPrefix(domainPrefix) }.map { "libvirt log /var/log/libvirt/qemu/\($0)" }
        let pods = (try? FileManager.default.contentsOfDirectory(atPath: podsDirectory)) ?? []
        found += pods.map { "pod directory \(podsDirectory)/\($0)" }
        // The pods' cgroups (ctr's cgroupsPath is /<namespace>/<id>), in every hierarchy.
        for hierarchy in cgroupHierarchies() {
            let directory = "\(hierarchy)/\(namespace)"
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
            found += entries.filter { entry in
                var isDirectory: ObjCBool = false
                return FileManager.default.fileExists(atPath: "\(directory)/\(entry)", isDirectory: &isDirectory) && isDirectory.boolValue
            }.map { "cgroup \(directory)/\($0)" }
        }
        return found
    }

    /// Mount points of the host's cgroup hierarchies (v1 controllers and v2).
    static func cgroupHierarchies() -> [String] {
        String(decoding: procFile("/proc/self/mounts"), as: UTF8.self).split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            return fields.count > 3 && (fields[2] == "cgroup" || fields[2] == "cgroup2") ? String(fields[1]) : nil
        }
    }

    /// Waits (bounded) until nothing is left; returns what is still there.
    static func awaitClean(namespace: String, shimSockets: [String] = [], timeout: TimeInterval = 10) -> [String] {
        var left: [String] = []
        _ = pollUntil(timeout: timeout) {
            left = find(namespace: namespace, shimSockets: shimSockets)
            return left.isEmpty
        }
        return left
    }

    static func processes() -> [(Int32, String)] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { entry in
            let data = procFile("/proc/\(entry)/cmdline")
            guard let pid = Int32(entry), !data.isEmpty else { return nil }
            return (pid, String(decoding: data.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self))
        }
    }
}

/// A procfs file read to its end. Foundation's `String(contentsOfFile:)` trusts st_size (0 for
/// procfs) and stops after one page: /proc/self/mountinfo lost its last entries on this host.
func procFile(_ path: String) -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return [] }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = read(fd, &chunk, chunk.count)
        if count < 0 && errno == EINTR { continue }
        if count <= 0 { return bytes }
        bytes.append(contentsOf: chunk[0..<count])
    }
}
