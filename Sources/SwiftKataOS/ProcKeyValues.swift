/// `Key: value [kB]` lines as /proc/meminfo and /proc/PID/status have them, parsed on bytes: the
/// guest agent reads these from its first moment on, where every instruction is emulated under TCG
/// and String's Character-wise splitting cost it more than the rest of its start.
public enum ProcKeyValues {
    /// Every line's key and leading unsigned number (lines without one are left out).
    public static func parse(_ bytes: [UInt8]) -> [String: UInt64] {
        var values: [String: UInt64] = [:]
        forEachLine(bytes) { key, value in values[String(decoding: key, as: UTF8.self)] = value }
        return values
    }

    /// The number on the line whose key is `key`, nil when there is none.
    public static func value(_ key: String, in bytes: [UInt8]) -> UInt64? {
        let wanted = Array(key.utf8)
        var found: UInt64?
        forEachLine(bytes) { lineKey, value in
            if found == nil && lineKey.elementsEqual(wanted) { found = value }
        }
        return found
    }

    private static func forEachLine(_ bytes: [UInt8], _ body: (ArraySlice<UInt8>, UInt64) -> Void) {
        let colon = UInt8(ascii: ":"), newline = UInt8(ascii: "\n"), space = UInt8(ascii: " "), tab = UInt8(ascii: "\t")
        var start = bytes.startIndex
        while start < bytes.endIndex {
            let end = bytes[start...].firstIndex(of: newline) ?? bytes.endIndex
            defer { start = end + 1 }
            guard let separator = bytes[start..<end].firstIndex(of: colon) else { continue }
            var index = separator + 1
            while index < end && (bytes[index] == space || bytes[index] == tab) { index += 1 }
            var value: UInt64 = 0
            var digits = 0
            while index < end, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9"), digits < 19 {
                value = value * 10 + UInt64(bytes[index] - UInt8(ascii: "0"))
                index += 1
                digits += 1
            }
            if digits > 0 { body(bytes[start..<separator], value) }
        }
    }
}
