import Glibc
import SwiftKataOS

/// What confines a pod's QEMU: libvirt runs it as an unprivileged user (qemu.conf `user`) inside a
/// seccomp sandbox (`seccomp_sandbox`), so that a QEMU escape is not host root.
public struct QEMUConfinement: Sendable, Equatable {
    public var uid: uid_t
    /// The process's seccomp mode (/proc/PID/status `Seccomp:`): 2 is a filter, 0 none.
    public var seccompMode: Int

    public init(uid: uid_t, seccompMode: Int) {
        self.uid = uid
        self.seccompMode = seccompMode
    }

    /// What is missing; empty when QEMU is confined.
    public var gaps: [String] {
        var gaps: [String] = []
        if uid == 0 { gaps.append("runs as root (qemu.conf user)") }
        if seccompMode != 2 { gaps.append("runs without its seccomp sandbox (qemu.conf seccomp_sandbox)") }
        return gaps
    }

    /// The running process `pid` as the kernel reports it; nil when it is gone.
    public static func of(pid: pid_t) -> QEMUConfinement? {
        guard let status = readText("/proc/\(pid)/status") else { return nil }
        return parse(status: status)
    }

    /// Parses /proc/PID/status (`Uid:` real, effective, saved, fs; `Seccomp:`). A 0 in any uid
    /// slot counts as root: the process can become root again.
    public static func parse(status: String) -> QEMUConfinement? {
        var uid: uid_t?
        var seccomp = 0
        for line in status.split(separator: "\n") {
            let fields = line.split(whereSeparator: { $0 == "\t" || $0 == " " })
            guard fields.count >= 2 else { continue }
            if fields[0] == "Uid:" {
                let ids = fields.dropFirst().compactMap { uid_t($0) }
                uid = ids.contains(0) ? 0 : ids.first
            } else if fields[0] == "Seccomp:" {
                seccomp = Int(fields[1]) ?? 0
            }
        }
        return uid.map { QEMUConfinement(uid: $0, seccompMode: seccomp) }
    }

    /// How libvirt will run QEMU, from its qemu.conf text: root or not, seccomp sandbox or not.
    /// libvirt's defaults (Debian's build): user libvirt-qemu, seccomp_sandbox 1.
    public static func predicted(qemuConf text: String?) -> (runsAsRoot: Bool, seccompSandbox: Bool) {
        var user = "libvirt-qemu"
        var sandbox = 1
        for line in (text ?? "").split(separator: "\n") {
            let code = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            let parts = code.split(separator: "=", maxSplits: 1).map { $0.trimmingWhitespace() }
            guard parts.count == 2 else { continue }
            let value = parts[1].filter { $0 != "\"" }
            switch parts[0] {
            case "user": user = value
            case "seccomp_sandbox": sandbox = Int(value) ?? sandbox
            default: break
            }
        }
        let runsAsRoot = user == "root" || user == "+0" || user == "0"
        return (runsAsRoot, sandbox >= 1)
    }
}
