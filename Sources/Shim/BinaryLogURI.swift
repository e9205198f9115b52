import Glibc

/// A `binary://` log URI (containerd's `--log-uri binary:///path?key=value`, nerdctl's default for
/// `run -d`): the logging binary to start and its arguments.
///
/// Parsed as Go's `net/url` does for containerd's runc shim (`NewBinaryCmd` in containerd's
/// `pkg/process`): the scheme is case-insensitive, the path is percent-decoded, the fragment is
/// dropped, and every query parameter becomes two arguments, its name and its first value (an
/// empty value stays an empty argument). Go ranges over a map, so containerd's argument order is
/// random; here it is the URI's order (containerd's clients encode the query sorted by name).
/// Unlike containerd, a URI with a host (`binary://usr/bin/x`, where Go would silently run `/bin/x`)
/// is refused.
struct BinaryLogURI: Sendable, Equatable {
    /// The logging binary, an absolute path.
    var path: String
    /// The binary's arguments (after argv[0], which is `path`).
    var arguments: [String]

    init(path: String, arguments: [String]) {
        self.path = path
        self.arguments = arguments
    }

    /// Whether `uri` names a logging binary (scheme `binary`, any case).
    static func isBinary(_ uri: String) -> Bool {
        uri.utf8.count >= 7 && String(decoding: uri.utf8.prefix(7), as: UTF8.self).lowercased() == "binary:"
    }

    /// Parses a `binary:` URI; syntax only (`validateExecutable` checks the file).
    init(parsing uri: String) throws(ShimError) {
        guard Self.isBinary(uri) else { throw .invalidArgument("log URI \(uri): not a binary:// URI") }
        var rest = Substring(uri.dropFirst("binary:".count))
        if let hash = rest.firstIndex(of: "#") { rest = rest[..<hash] }
        var query: Substring = ""
        if let question = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: question)...]
            rest = rest[..<question]
        }
        if rest.hasPrefix("//") {
            let authority = rest.dropFirst(2).prefix { $0 != "/" }
            guard authority.isEmpty else {
                throw .invalidArgument("log URI \(uri): the logging binary must be an absolute path, binary:///path (\"\(authority)\" reads as a host)")
            }
            rest = rest.dropFirst(2)
        }
        guard !rest.isEmpty else { throw .invalidArgument("log URI \(uri): no logging binary path (expected binary:///absolute/path)") }
        guard rest.hasPrefix("/") else {
            throw .invalidArgument("log URI \(uri): the logging binary path \(rest) is relative (expected binary:///absolute/path)")
        }
        guard let path = Self.percentDecode(rest, plusIsSpace: false) else {
            throw .invalidArgument("log URI \(uri): the path has a malformed %-escape")
        }
        guard !path.utf8.contains(0) else { throw .invalidArgument("log URI \(uri): the path contains a NUL byte") }
        var seen: Set<String> = []
        var arguments: [String] = []
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            guard !pair.contains(";") else { continue }  // Go's ParseQuery rejects (and Query() drops) these
            let equals = pair.firstIndex(of: "=")
            let rawKey = equals.map { pair[..<$0] } ?? pair
            let rawValue = equals.map { pair[pair.index(after: $0)...] } ?? ""
            guard let key = Self.percentDecode(rawKey, plusIsSpace: true),
                let value = Self.percentDecode(rawValue, plusIsSpace: true)
            else { continue }
            guard seen.insert(key).inserted else { continue }  // only a parameter's first value is passed
            // Go's exec refuses NUL in arguments, so containerd would fail to start the binary.
            guard !key.utf8.contains(0) && !value.utf8.contains(0) else {
                throw .invalidArgument("log URI \(uri): query parameter \(key) contains a NUL byte")
            }
            arguments += [key, value]
        }
        self.init(path: path, arguments: arguments)
    }

    /// A binary that does not exist, is not a regular file or is not executable is an invalid argument.
    func validateExecutable() throws(ShimError) {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw .invalidArgument("logging binary \(path): \(String(cString: strerror(errno)))")
        }
        guard info.st_mode & S_IFMT == S_IFREG else { throw .invalidArgument("logging binary \(path) is not a regular file") }
        guard access(path, X_OK) == 0 else { throw .invalidArgument("logging binary \(path) is not executable") }
    }

    /// `%XX` escapes decoded (and `+` as a space in query components); nil for a malformed escape.
    static func percentDecode(_ text: Substring, plusIsSpace: Bool) -> String? {
        var bytes: [UInt8] = []
        var iterator = text.utf8.makeIterator()
        func hex(_ byte: UInt8?) -> UInt8? {
            switch byte {
            case .some(let b) where b >= 0x30 && b <= 0x39: b - 0x30
            case .some(let b) where b >= 0x41 && b <= 0x46: b - 0x41 + 10
            case .some(let b) where b >= 0x61 && b <= 0x66: b - 0x61 + 10
            default: nil
            }
        }
        while let byte = iterator.next() {
            switch byte {
            case UInt8(ascii: "%"):
                guard let high = hex(iterator.next()), let low = hex(iterator.next()) else { return nil }
                bytes.append(high << 4 | low)
            case UInt8(ascii: "+") where plusIsSpace: bytes.append(UInt8(ascii: " "))
            default: bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
