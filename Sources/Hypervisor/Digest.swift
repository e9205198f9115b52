import Crypto

/// SHA-256 in hex, for the short names swiftkata derives from ids of any length: pod directories,
/// domain and tap names, and the socket address containerd and other shims derive from
/// `<address>/<namespace>/<group id>`.
public enum Digest {
    public static func sha256Hex(_ text: String) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var hex: [UInt8] = []
        hex.reserveCapacity(64)
        for byte in SHA256.hash(data: Array(text.utf8)) {
            hex.append(digits[Int(byte >> 4)])
            hex.append(digits[Int(byte & 0xf)])
        }
        return String(decoding: hex, as: UTF8.self)
    }
}
