import Glibc
import SwiftKataOS

/// A fresh directory under /tmp for one test, removed (mounts first) when the test ends.
final class Scratch {
    let path: String

    init(_ name: String) throws {
        var template = Array("/tmp/swiftkata-os-\(name)-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw SystemError.last("mkdtemp") }
        path = String(cString: made)
    }

    deinit {
        for point in MountTable.mountPoints(under: path) { umount2(point, Int32(MNT_DETACH)) }
        if let directory = try? OpenDirectory(path: "/tmp") {
            directory.removeTree(String(path.dropFirst("/tmp/".count)))
        }
    }

    func makeDirectory(_ relative: String) throws {
        try makeDirectories("\(path)/\(relative)", mode: 0o755)
    }

    func writeFile(_ relative: String, _ text: String = "x") throws {
        try writeFileAtomically("\(path)/\(relative)", Array(text.utf8))
    }

    func exists(_ relative: String) -> Bool {
        var info = stat()
        return lstat("\(path)/\(relative)", &info) == 0
    }

    func symlink(_ relative: String, to target: String) throws {
        guard Glibc.symlink(target, "\(path)/\(relative)") == 0 else { throw SystemError.last("symlink", path: relative) }
    }

    func mountTmpfs(_ relative: String) throws {
        guard mount("tmpfs", "\(path)/\(relative)", "tmpfs", 0, "size=1m") == 0 else {
            throw SystemError.last("mount", path: relative)
        }
    }
}
