import Glibc
@_exported import SystemPackage

/// A system call that failed: what was attempted, on which path (when there is one), and errno.
/// Every wrapper in this module throws it, so a caller can both show the cause and branch on it.
public struct SystemError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The call or step that failed ("open", "unlinkat", "mount"…).
    public var operation: String
    /// The path it worked on, for messages; nil for calls on descriptors alone.
    public var path: String?
    public var errno: Errno

    public init(_ operation: String, path: String? = nil, errno: Errno) {
        self.operation = operation
        self.path = path
        self.errno = errno
    }

    /// The error of the call that just failed (Glibc's `errno`).
    public static func last(_ operation: String, path: String? = nil) -> SystemError {
        SystemError(operation, path: path, errno: Errno(rawValue: Glibc.errno))
    }

    public var description: String {
        if let path { "\(operation) \(path): \(errno)" } else { "\(operation): \(errno)" }
    }
}

/// Retries `call` while it fails with EINTR; returns its result otherwise.
@inline(__always)
public func retryingInterrupts<Result: BinaryInteger>(_ call: () -> Result) -> Result {
    while true {
        let result = call()
        if result >= 0 || Glibc.errno != EINTR { return result }
    }
}
