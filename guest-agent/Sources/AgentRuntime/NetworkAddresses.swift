import Glibc

/// Why a pod's network or sysctl configuration cannot be applied. The message names the field.
public struct PodConfigError: Error, Equatable, CustomStringConvertible {
    public var field: String
    public var reason: String

    public init(field: String, reason: String) {
        self.field = field
        self.reason = reason
    }

    public var description: String { "\(field): \(reason)" }
}

/// An IPv4 or IPv6 address in network byte order.
public struct IPAddress: Sendable, Hashable, CustomStringConvertible {
    public enum Family: Sendable, Hashable {
        case v4, v6
        /// AF_INET / AF_INET6.
        public var addressFamily: Int32 { self == .v4 ? AF_INET : AF_INET6 }
        public var bits: Int { self == .v4 ? 32 : 128 }
    }

    public var family: Family
    /// 4 or 16 bytes.
    public var bytes: [UInt8]

    /// Parses with inet_pton: dotted quad, or IPv6 text (no zone, no prefix).
    public init?(_ text: String) {
        guard !text.isEmpty, text.utf8.count < 46 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 16)
        if inet_pton(AF_INET, text, &buffer) == 1 {
            family = .v4
            bytes = Array(buffer.prefix(4))
        } else if inet_pton(AF_INET6, text, &buffer) == 1 {
            family = .v6
            bytes = buffer
        } else {
            return nil
        }
    }

    public init(family: Family, bytes: [UInt8]) {
        self.family = family
        self.bytes = bytes
    }

    /// 0.0.0.0 or ::.
    public static func any(_ family: Family) -> IPAddress {
        IPAddress(family: family, bytes: [UInt8](repeating: 0, count: family.bits / 8))
    }

    public var description: String {
        var text = [CChar](repeating: 0, count: 64)
        _ = inet_ntop(family.addressFamily, bytes, &text, socklen_t(text.count))
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The address with every bit past `prefixLength` cleared.
    public func masked(to prefixLength: Int) -> IPAddress {
        var result = bytes
        for index in result.indices {
            let keep = min(max(prefixLength - index * 8, 0), 8)
            result[index] &= keep == 8 ? 0xff : ~(UInt8(0xff) >> UInt8(keep))
        }
        return IPAddress(family: family, bytes: result)
    }
}

/// An address with a prefix length: an interface address (10.88.0.5/16) or a route destination
/// (10.88.0.0/16, no host bits set).
public struct IPPrefix: Sendable, Hashable, CustomStringConvertible {
    public var address: IPAddress
    public var length: Int

    public init(address: IPAddress, length: Int) {
        self.address = address
        self.length = length
    }

    public var description: String { "\(address)/\(length)" }
    public var isDefault: Bool { length == 0 }

    /// An interface address: text parsed with inet_pton, prefix at most 32 (IPv4) or 128 (IPv6).
    public static func interfaceAddress(_ text: String, prefixLength: UInt32, field: String) throws(PodConfigError) -> IPPrefix {
        guard let address = IPAddress(text) else {
            throw PodConfigError(field: field, reason: "\"\(text.prefix(64))\" is not an IPv4 or IPv6 address")
        }
        guard prefixLength <= address.family.bits else {
            throw PodConfigError(field: field, reason: "prefix length \(prefixLength) of \(address) exceeds \(address.family.bits)")
        }
        return IPPrefix(address: address, length: Int(prefixLength))
    }

    /// A route destination: "address/length" with no host bits set.
    public static func cidr(_ text: String, field: String) throws(PodConfigError) -> IPPrefix {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let address = IPAddress(String(parts[0])),
            (1...3).contains(parts[1].utf8.count), parts[1].utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
            let length = Int(parts[1]), length <= address.family.bits
        else {
            throw PodConfigError(field: field, reason: "\"\(text.prefix(64))\" is not a CIDR (address/prefix-length)")
        }
        let prefix = IPPrefix(address: address, length: length)
        guard address.masked(to: length) == address else {
            throw PodConfigError(field: field, reason: "\(prefix) has host bits set (the network is \(address.masked(to: length))/\(length))")
        }
        return prefix
    }
}

/// A MAC address, kept as the lower-case text sysfs shows (/sys/class/net/*/address).
public struct MACAddress: Sendable, Hashable, CustomStringConvertible {
    public var text: String

    /// Exactly six colon-separated pairs of hex digits, either case.
    public init?(_ text: String) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        let hex = { (byte: UInt8) in (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x46) || (byte >= 0x61 && byte <= 0x66) }
        guard text.utf8.count == 17, parts.count == 6, parts.allSatisfy({ $0.utf8.count == 2 && $0.utf8.allSatisfy(hex) }) else {
            return nil
        }
        self.text = text.lowercased()
    }

    public var description: String { text }
}

/// Linux interface names: 1...15 bytes (IFNAMSIZ - 1) of [A-Za-z0-9_.-], not "." or "..".
public enum InterfaceName {
    public static func isValid(_ name: String) -> Bool {
        (1...15).contains(name.utf8.count) && name != "." && name != ".."
            && name.utf8.allSatisfy { byte in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)
                    || byte == 0x5f || byte == 0x2e || byte == 0x2d
            }
    }
}
