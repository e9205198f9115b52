#if canImport(Glibc)
    import Glibc
#endif

/// A private directory under /tmp for sockets (short paths: sun_path holds 108 bytes), removed by
/// `remove()`. Its name carries the test process's pid, so that the directories of a test process
/// killed before it could remove them are removed by a later one.
public struct TempDirectory: Sendable {
    public let path: String

    public init(_ prefix: String = "swiftkata-test") {
        Self.removeLeftovers(prefix: prefix)
        var template = Array("/tmp/\(prefix)-\(getpid())-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed")
        path = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private init(existing path: String) { self.path = path }

    public func file(_ name: String) -> String { "\(path)/\(name)" }

    public func remove() {
        for name in Self.entries(of: path) { unlink(file(name)) }
        rmdir(path)
    }

    /// Removes /tmp/<prefix>-<pid>-* of processes that no longer run (a live one, or one of another
    /// user, may be a test run going on beside this one).
    private static func removeLeftovers(prefix: String) {
        let start = prefix + "-"
        for name in entries(of: "/tmp") where name.hasPrefix(start) {
            let rest = name.dropFirst(start.count)
            guard let dash = rest.firstIndex(of: "-"), let pid = pid_t(rest[..<dash]), pid > 0, pid != getpid() else { continue }
            if kill(pid, 0) == 0 || errno == EPERM { continue }
            TempDirectory(existing: "/tmp/\(name)").remove()
        }
    }

    private static func entries(of directory: String) -> [String] {
        guard let dir = opendir(directory) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}
