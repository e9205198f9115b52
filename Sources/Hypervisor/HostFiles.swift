import Glibc

/// Why a file could not be read whole (errno values as reported by the failing call).
public enum FileReadFailure: Error, Sendable, Equatable, CustomStringConvertible {
    case cannotOpen(errno: Int32)
    case cannotRead(errno: Int32)
    case tooLarge(limit: Int)

    public var description: String {
        switch self {
        case .cannotOpen(let code): "cannot open: \(String(cString: strerror(code)))"
        case .cannotRead(let code): "cannot read: \(String(cString: strerror(code)))"
        case .tooLarge(let limit): "larger than \(limit) bytes"
        }
    }
}

/// The whole file at `path`, refused when it is larger than `limit` bytes. The one bounded file
/// reader of the host side (shim, configuration, swiftkata-check, swiftkata-vm).
public func readWholeFile(_ path: String, limit: Int) throws(FileReadFailure) -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw .cannotOpen(errno: errno) }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = read(fd, &chunk, chunk.count)
        if count < 0 && errno == EINTR { continue }
        guard count >= 0 else { throw .cannotRead(errno: errno) }
        if count == 0 { return bytes }
        bytes.append(contentsOf: chunk[0..<count])
        if bytes.count > limit { throw .tooLarge(limit: limit) }
    }
}

/// `readWholeFile`, nil on failure with `errno` telling why (EFBIG: larger than `limit`).
public func readFile(_ path: String, limit: Int) -> [UInt8]? {
    do { return try readWholeFile(path, limit: limit) } catch {
        switch error {
        case .cannotOpen(let code), .cannotRead(let code): errno = code
        case .tooLarge: errno = EFBIG
        }
        return nil
    }
}

/// Up to `limit` bytes from the start of the file at `path` (a longer file is cut, not refused).
public func readFileHead(_ path: String, limit: Int) throws(FileReadFailure) -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw .cannotOpen(errno: errno) }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: min(65536, max(limit, 1)))
    while bytes.count < limit {
        let count = read(fd, &chunk, min(chunk.count, limit - bytes.count))
        if count < 0 && errno == EINTR { continue }
        guard count >= 0 else { throw .cannotRead(errno: errno) }
        if count == 0 { break }
        bytes.append(contentsOf: chunk[0..<count])
    }
    return bytes
}

/// `readFileHead`, nil on failure.
public func readFilePrefix(_ path: String, limit: Int) -> [UInt8]? {
    try? readFileHead(path, limit: limit)
}

/// The names in directory `path`, without "." and ".."; empty when it cannot be read.
public func directoryEntries(_ path: String) -> [String] {
    guard let directory = opendir(path) else { return [] }
    defer { closedir(directory) }
    var names: [String] = []
    while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}
