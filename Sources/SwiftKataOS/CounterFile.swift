import Glibc

/// Monotonic counters that several processes add to, kept as `name value` lines in one root-only
/// file (the node's counters of every shim, in the state directory). Each change reads, adds and
/// rewrites the file under an exclusive `flock`; readers take a shared one. The file is opened
/// without following a link, and a file over 64 KiB or a line that is not `name value` is ignored
/// line by line rather than trusted.
public struct CounterFile: Sendable {
    public let path: String
    /// Largest file read; counter names are a small fixed set, so this is never reached in use.
    static let limit = 64 << 10

    public init(path: String) { self.path = path }

    /// Adds `amount` to the counter `name` (created at zero). Names are [A-Za-z0-9_:.-]{1,128}.
    public func add(_ name: String, _ amount: UInt64 = 1) throws(SystemError) {
        guard Self.isValidName(name) else { throw SystemError("counter \(name)", path: path, errno: .invalidArgument) }
        let fd = retryingInterrupts { open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600) }
        guard fd >= 0 else { throw .last("open", path: path) }
        defer { close(fd) }
        guard retryingInterrupts({ flock(fd, LOCK_EX) }) == 0 else { throw .last("flock", path: path) }
        var counters = Self.parse((try? readToEnd(fd: fd, limit: Self.limit, path: path)) ?? [])
        counters[name, default: 0] &+= amount
        let text = counters.keys.sorted().map { "\($0) \(counters[$0]!)\n" }.joined()
        guard lseek(fd, 0, SEEK_SET) == 0 else { throw .last("lseek", path: path) }
        try writeAll(fd: fd, Array(text.utf8), path: path)
        guard ftruncate(fd, off_t(text.utf8.count)) == 0 else { throw .last("ftruncate", path: path) }
    }

    /// Every counter; empty when the file does not exist yet.
    public func read() throws(SystemError) -> [String: UInt64] {
        let fd = retryingInterrupts { open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) }
        guard fd >= 0 else {
            if Glibc.errno == ENOENT { return [:] }
            throw .last("open", path: path)
        }
        defer { close(fd) }
        guard retryingInterrupts({ flock(fd, LOCK_SH) }) == 0 else { throw .last("flock", path: path) }
        return Self.parse(try readToEnd(fd: fd, limit: Self.limit, path: path))
    }

    static func parse(_ bytes: [UInt8]) -> [String: UInt64] {
        var counters: [String: UInt64] = [:]
        for line in bytes.split(separator: UInt8(ascii: "\n")) {
            let fields = line.split(separator: UInt8(ascii: " "))
            guard fields.count == 2 else { continue }
            let name = String(decoding: fields[0], as: UTF8.self)
            guard isValidName(name), let value = UInt64(String(decoding: fields[1], as: UTF8.self)) else { continue }
            counters[name] = value
        }
        return counters
    }

    static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 128
            && name.utf8.allSatisfy { byte in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)
                    || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ":") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "-")
            }
    }
}
