import Foundation

/// A minimal container root file system made from Debian's busybox-static, for tests.
enum BusyboxRootfs {
    static let applets = [
        "sh", "echo", "cat", "sleep", "ls", "mkdir", "uname", "id", "hostname", "true", "false", "head", "dd", "wc", "tr", "tty", "stty",
        "ip", "nc", "readlink",
    ]

    /// containerd's default: new pid, ipc, uts and mount namespaces (the network one is the VM's).
    static let defaultNamespaces = #"{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}"#

    /// Creates `<directory>/bin/busybox` plus applet links and the usual empty top-level directories.
    static func make(at directory: String) throws {
        let fm = FileManager.default
        for dir in ["bin", "proc", "dev", "sys", "tmp", "etc", "root"] {
            try fm.createDirectory(atPath: "\(directory)/\(dir)", withIntermediateDirectories: true)
        }
        let busybox = "\(directory)/bin/busybox"
        if !fm.fileExists(atPath: busybox) { try fm.copyItem(atPath: "/bin/busybox", toPath: busybox) }
        for applet in applets where !fm.fileExists(atPath: "\(directory)/bin/\(applet)") {
            try fm.createSymbolicLink(atPath: "\(directory)/bin/\(applet)", withDestinationPath: "busybox")
        }
    }

    /// An OCI spec like containerd's default, running `args` in `<id>/rootfs` of the shared fs, with
    /// hostname `id` unless `hostname` says otherwise ("" as CRI sends for a pod's app containers).
    static func spec(
        id: String, args: [String], terminal: Bool = false, extraLinux: String = "",
        namespaces: String = defaultNamespaces, hostname: String? = nil
    ) -> Data {
        let argsJSON = String(decoding: try! JSONEncoder().encode(args), as: UTF8.self)
        return Data(
            """
            {
              "ociVersion": "1.0.2",
              "process": {
                "terminal": \(terminal),
                "user": {"uid": 0, "gid": 0},
                "args": \(argsJSON),
                "env": ["PATH=/bin", "HOME=/root"],
                "cwd": "/",
                "capabilities": {
                  "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_SETUID", "CAP_SETGID"],
                  "effective": ["CAP_CHOWN", "CAP_KILL", "CAP_SETUID", "CAP_SETGID"],
                  "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_SETUID", "CAP_SETGID"]
                },
                "noNewPrivileges": true
              },
              "root": {"path": "\(id)/rootfs"},
              "hostname": "\(hostname ?? id)",
              "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
                {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
                {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
                {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]}
              ],
              "linux": {
                "namespaces": [\(namespaces)],
                "maskedPaths": ["/proc/kcore"],
                "readonlyPaths": ["/proc/sys"]\(extraLinux)
              }
            }
            """.utf8)
    }
}
