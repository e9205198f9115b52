import Glibc

/// The whole file at `path`, refused with EFBIG when it is larger than `limit` bytes. With
/// `noFollow`, a final symlink is refused (ELOOP), and so is anything that is not a regular file.
public func readWholeFile(_ path: String, limit: Int, noFollow: Bool = false) throws(SystemError) -> [UInt8] {
    let fd = retryingInterrupts { open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | (noFollow ? O_NOFOLLOW | O_NONBLOCK : 0)) }
    guard fd >= 0 else { throw .last("open", path: path) }
    defer { close(fd) }
    if noFollow {
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .last("fstat", path: path) }
        guard info.st_mode & S_IFMT == S_IFREG else { throw SystemError("open", path: path, errno: .invalidArgument) }
    }
    return try readToEnd(fd: fd, limit: limit, path: path)
}

/// Reads `fd` to its end; EFBIG past `limit` bytes.
public func readToEnd(fd: CInt, limit: Int, path: String? = nil) throws(SystemError) -> [UInt8] {
    var bytes: [UInt8] = []
    var reads = ChunkedReads()
    while true {
        let left = limit - bytes.count
        let chunk = try reads.next(fd: fd, upTo: left == Int.max ? left : left + 1, path: path)
        if chunk.isEmpty { return bytes }
        bytes.append(contentsOf: chunk)
        if bytes.count > limit { throw SystemError("read", path: path, errno: .fileTooLarge) }
    }
}

/// Reads in chunks that start at one page (most procfs, sysfs and cgroupfs files are smaller) and
/// double up to 64 KiB while reads fill them, into memory that is not zeroed first: in a TCG guest
/// every byte cleared is emulated, and the agent reads such files from its first moment on.
struct ChunkedReads {
    private var size = 4096

    /// The next chunk of at most `limit` bytes; empty at the end of the file.
    mutating func next(fd: CInt, upTo limit: Int, path: String?) throws(SystemError) -> [UInt8] {
        let wanted = min(size, max(limit, 1))
        var count = 0
        let chunk = [UInt8](unsafeUninitializedCapacity: wanted) { buffer, initialized in
            count = retryingInterrupts { read(fd, buffer.baseAddress, wanted) }
            initialized = max(count, 0)
        }
        guard count >= 0 else { throw .last("read", path: path) }
        if count == wanted && size < 65536 { size *= 2 }
        return chunk
    }
}

/// `readWholeFile`, nil on failure with `errno` telling why (EFBIG: larger than `limit`).
public func readFile(_ path: String, limit: Int) -> [UInt8]? {
    do { return try readWholeFile(path, limit: limit) } catch {
        errno = error.errno.rawValue
        return nil
    }
}

/// Up to `limit` bytes from the start of the file at `path` (a longer file is cut, not refused).
public func readFileHead(_ path: String, limit: Int) throws(SystemError) -> [UInt8] {
    let fd = retryingInterrupts { open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY) }
    guard fd >= 0 else { throw .last("open", path: path) }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var reads = ChunkedReads()
    while bytes.count < limit {
        let chunk = try reads.next(fd: fd, upTo: limit - bytes.count, path: path)
        if chunk.isEmpty { break }
        if bytes.isEmpty { bytes = chunk } else { bytes.append(contentsOf: chunk) }
    }
    return bytes
}

/// `readFileHead`, nil on failure.
public func readFilePrefix(_ path: String, limit: Int) -> [UInt8]? {
    try? readFileHead(path, limit: limit)
}

/// A small text file (procfs, sysfs, cgroupfs), at most `limit` bytes of it; nil when unreadable.
public func readText(_ path: String, limit: Int = 65536) -> String? {
    (try? readFileHead(path, limit: limit)).map { String(decoding: $0, as: UTF8.self) }
}

/// Writes a small text file in one write (sysfs, cgroupfs, procfs); false when the write failed.
@discardableResult
public func writeSmallFile(_ path: String, _ text: String) -> Bool {
    let fd = retryingInterrupts { open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY) }
    guard fd >= 0 else { return false }
    defer { close(fd) }
    let bytes = Array(text.utf8)
    return bytes.withUnsafeBytes { buffer in retryingInterrupts { write(fd, buffer.baseAddress, buffer.count) } } == bytes.count
}

/// Writes all of `bytes` to `fd`.
/// One read of up to `limit` bytes from a pipe, FIFO or socket (blocking); empty at EOF or on error.
public func readChunk(fd: CInt, limit: Int) -> [UInt8] {
    var buffer = [UInt8](repeating: 0, count: limit)
    while true {
        let count = read(fd, &buffer, limit)
        if count < 0 && errno == EINTR { continue }
        return count > 0 ? Array(buffer[0..<count]) : []
    }
}

public func writeAll(fd: CInt, _ bytes: [UInt8], path: String? = nil) throws(SystemError) {
    var offset = 0
    while offset < bytes.count {
        let written = bytes[offset...].withUnsafeBytes { buffer in retryingInterrupts { write(fd, buffer.baseAddress, buffer.count) } }
        guard written > 0 else { throw .last("write", path: path) }
        offset += written
    }
}

/// The last `limit` bytes of the regular file at `path`, opened without following a symlink and
/// without blocking (a FIFO planted there is refused, not waited on).
public func readFileTail(_ path: String, limit: Int) throws(SystemError) -> [UInt8] {
    let fd = retryingInterrupts { open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK) }
    guard fd >= 0 else { throw .last("open", path: path) }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0 else { throw .last("fstat", path: path) }
    guard info.st_mode & S_IFMT == S_IFREG else { throw SystemError("open", path: path, errno: .invalidArgument) }
    if info.st_size > limit, lseek(fd, off_t(info.st_size) - off_t(limit), SEEK_SET) < 0 { throw .last("lseek", path: path) }
    var bytes = [UInt8](repeating: 0, count: limit)
    var total = 0
    while total < limit {
        let count = bytes.withUnsafeMutableBytes { buffer in retryingInterrupts { read(fd, buffer.baseAddress! + total, limit - total) } }
        guard count >= 0 else { throw .last("read", path: path) }
        if count == 0 { break }
        total += count
    }
    return Array(bytes[0..<total])
}
