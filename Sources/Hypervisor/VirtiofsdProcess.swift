import Glibc
import SwiftKataOS

/// The virtiofsd libvirt starts for a domain's shared directory. libvirt names its pid file after
/// a truncated domain name and the domain id, so the process is found by what it serves instead:
/// root's `virtiofsd … -o source=<directory>` (a local user cannot make a root process).
public enum VirtiofsdProcess {
    /// The pid of root's virtiofsd serving exactly `directory` (the first, where it forked), or nil.
    public static func pid(serving directory: String) -> pid_t? {
        pids(serving: directory).first
    }

    /// Every process of root's virtiofsd serving exactly `directory`, lowest pid first.
    public static func pids(serving directory: String) -> [pid_t] {
        var found: [pid_t] = []
        for name in directoryEntries("/proc") {
            guard let pid = pid_t(name), pid > 1,
                readText("/proc/\(name)/comm", limit: 64)?.trimmingWhitespace() == "virtiofsd",
                let status = readText("/proc/\(name)/status", limit: 8192),
                QEMUConfinement.parse(status: status)?.uid == 0,
                let commandLine = try? readFileHead("/proc/\(name)/cmdline", limit: 16384)
            else { continue }
            let arguments = commandLine.split(separator: 0, omittingEmptySubsequences: true).map { String(decoding: $0, as: UTF8.self) }
            if serves(arguments: arguments, directory: directory) { found.append(pid) }
        }
        return found.sorted()
    }

    /// Whether a virtiofsd command line serves `directory` (`-o source=DIR[,…]` or `--shared-dir DIR`).
    static func serves(arguments: [String], directory: String) -> Bool {
        for (index, argument) in arguments.enumerated() {
            if argument == "--shared-dir", index + 1 < arguments.count, arguments[index + 1] == directory { return true }
            if argument == "-o", index + 1 < arguments.count {
                let options = arguments[index + 1].split(separator: ",")
                if options.contains(where: { $0 == "source=\(directory)" }) { return true }
            }
        }
        return false
    }
}
