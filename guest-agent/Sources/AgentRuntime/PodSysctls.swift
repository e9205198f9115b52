/// Kernel parameters the pod may set (Kubernetes' sysctls): only network ones, which belong to the
/// VM's network namespace, the pod's own.
public struct PodSysctl: Sendable, Equatable {
    public static let maxCount = 64
    public static let maxKeyBytes = 128
    public static let maxValueBytes = 256

    /// e.g. net.ipv4.ip_forward
    public var key: String
    public var value: String

    /// The file under /proc/sys that holds it: dots become slashes.
    public var path: String { "/proc/sys/" + key.split(separator: ".").joined(separator: "/") }

    /// Checks every key and value; returned sorted by key, so the order of writes is stable.
    /// Keys: under `net.`, [a-z0-9_.-], no empty component (so no ".."), at most 128 bytes.
    /// Values: at most 256 bytes, no newline or NUL.
    public static func validate(_ sysctls: [String: String]) throws(PodConfigError) -> [PodSysctl] {
        guard sysctls.count <= maxCount else {
            throw PodConfigError(field: "sysctls", reason: "\(sysctls.count) entries, at most \(maxCount)")
        }
        var result: [PodSysctl] = []
        for (key, value) in sysctls.sorted(by: { $0.key < $1.key }) {
            let field = "sysctls[\(key.prefix(maxKeyBytes))]"
            let allowed = key.utf8.allSatisfy { byte in
                (byte >= 0x61 && byte <= 0x7a) || (byte >= 0x30 && byte <= 0x39) || byte == 0x5f || byte == 0x2e || byte == 0x2d
            }
            let components = key.split(separator: ".", omittingEmptySubsequences: false)
            guard key.utf8.count <= maxKeyBytes, allowed, components.count >= 3, components[0] == "net",
                !components.contains(where: \.isEmpty)
            else {
                throw PodConfigError(field: field, reason: "only net.* keys of [a-z0-9_.-] with no empty component are allowed")
            }
            guard value.utf8.count <= maxValueBytes, !value.utf8.contains(where: { $0 == 0x0a || $0 == 0x0d || $0 == 0 }) else {
                throw PodConfigError(field: field, reason: "the value must be at most \(maxValueBytes) bytes without newline or NUL")
            }
            result.append(PodSysctl(key: key, value: value))
        }
        return result
    }
}
