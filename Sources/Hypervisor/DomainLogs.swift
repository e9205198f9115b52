import Glibc
import SwiftKataOS

/// The log files libvirt's QEMU driver writes for each domain: `<name>.log` (QEMU's command line and
/// stderr, start and stop lines) and `<name>-fs<N>-virtiofsd.log` per virtio-fs share. libvirt keeps
/// them after a transient domain is gone, so a host with one domain per pod would collect two files
/// per pod for ever; swiftkata removes them when it destroys the pod's VM.
public enum DomainLogs {
    /// The QEMU driver's log directory for `uri`: the system daemon's, or a session daemon's under
    /// the user's cache directory; nil for a remote or unknown URI (nothing is touched there).
    public static func directory(uri: String, environment: [String: String]) -> String? {
        switch LibvirtURI.withoutQuery(uri) {
        case "qemu:///system":
            return "/var/log/libvirt/qemu"
        case "qemu:///session":
            if let cache = environment["XDG_CACHE_HOME"], cache.hasPrefix("/") { return "\(cache)/libvirt/qemu/log" }
            if let home = environment["HOME"], home.hasPrefix("/") { return "\(home)/.cache/libvirt/qemu/log" }
            return nil
        default:
            return nil
        }
    }

    /// `directory(uri:environment:)` with this process's environment.
    public static func directory(uri: String) -> String? {
        let environment = ["HOME", "XDG_CACHE_HOME"].reduce(into: [String: String]()) { found, key in
            if let value = getenv(key) { found[key] = String(cString: value) }
        }
        return directory(uri: uri, environment: environment)
    }

    /// The names in `entries` that are logs of `domain`: `<domain>.log`, `<domain>-fs<N>-virtiofsd.log`.
    /// A rotated log (`.log.1`) or another domain whose name starts with this one is not among them.
    public static func names(of domain: String, among entries: [String]) -> [String] {
        entries.filter { name in
            if name == "\(domain).log" { return true }
            guard name.hasPrefix("\(domain)-fs"), name.hasSuffix("-virtiofsd.log") else { return false }
            let index = name.dropFirst(domain.count + 3).dropLast("-virtiofsd.log".count)
            return !index.isEmpty && index.allSatisfy { $0.isASCII && $0.isNumber }
        }
    }

    /// Removes `domain`'s logs in `directory`; returns what could not be removed, with why.
    @discardableResult
    public static func remove(domain: String, in directory: String) -> [String] {
        names(of: domain, among: directoryEntries(directory)).compactMap { name in
            let path = "\(directory)/\(name)"
            return unlink(path) == 0 || errno == ENOENT ? nil : "\(path): \(String(cString: strerror(errno)))"
        }
    }

    /// The last `lines` messages of `domain`'s QEMU log (from at most its last 4 KiB), joined by " | ";
    /// nil when there are none. Messages are the lines that start with a timestamp: libvirt stamps its
    /// own and QEMU runs with `-msg timestamp=on`; QEMU's command line, one argument a line, is left out.
    public static func tail(of domain: String, in directory: String, lines: Int = 5) -> String? {
        let fd = open("\(directory)/\(domain).log", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { return nil }
        let size = Int(info.st_size)
        let window = min(size, 4096)
        var bytes = [UInt8](repeating: 0, count: window)
        let count = pread(fd, &bytes, window, off_t(size - window))
        guard count > 0 else { return nil }
        let text = String(decoding: bytes[0..<count], as: UTF8.self)
        let last = text.split(separator: "\n").filter { $0.first?.isNumber == true }.suffix(lines)
        return last.isEmpty ? nil : last.joined(separator: " | ")
    }
}
