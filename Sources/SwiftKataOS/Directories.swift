import Glibc

/// `mkdir -p` with `mode` for the directories it creates (existing ones are left as they are).
public func makeDirectories(_ path: String, mode: mode_t = 0o755) throws(SystemError) {
    var current = path.hasPrefix("/") ? "" : "."
    for component in path.split(separator: "/") {
        current += "/\(component)"
        if mkdir(current, mode) != 0 && errno != EEXIST { throw .last("mkdir", path: current) }
    }
}

/// The names in directory `path`, without "." and ".."; empty when it cannot be read.
public func directoryEntries(_ path: String) -> [String] {
    guard let directory = opendir(path) else { return [] }
    defer { closedir(directory) }
    return entryNames(of: directory)
}

/// Reads every name of an open directory stream, without "." and "..".
func entryNames(of directory: OpaquePointer) -> [String] {
    var names: [String] = []
    while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}
