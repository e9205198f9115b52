/// A parsed TOML document, limited to what swiftkata's configuration uses: `[table]` headers
/// (dotted names allowed), `key = value` with bare or quoted keys, strings (basic and literal),
/// integers, floats, booleans and arrays of those. Anything else is rejected with its line.
public struct TOMLDocument: Sendable, Equatable {
    /// A value with the line it was written on, so errors can point at it.
    public struct Entry: Sendable, Equatable {
        public var value: TOMLValue
        public var line: Int
    }

    /// Keys by table ("" is the root table, "a.b" the table `[a.b]`).
    public private(set) var tables: [String: [String: Entry]] = ["": [:]]
    /// Line of each table header, for errors about a whole table.
    public private(set) var tableLines: [String: Int] = [:]

    public init(parsing text: String) throws(TOMLSyntaxError) {
        var parser = Parser(text: Array(text.utf8))
        var current = ""
        while let line = parser.nextLogicalStart() {
            if parser.peek == UInt8(ascii: "[") {
                current = try parser.tableHeader()
                if tableLines[current] != nil {
                    throw TOMLSyntaxError(line: line, message: "table [\(current)] is defined twice")
                }
                tableLines[current] = line
                tables[current, default: [:]] = tables[current] ?? [:]
            } else {
                let key = try parser.key()
                try parser.expect(UInt8(ascii: "="), "expected '=' after key \"\(key)\"")
                let value = try parser.value()
                if tables[current]?[key] != nil {
                    throw TOMLSyntaxError(line: line, message: "key \"\(key)\" is set twice")
                }
                tables[current, default: [:]][key] = Entry(value: value, line: line)
            }
            try parser.endOfLine()
        }
    }
}

/// A TOML value of the kinds swiftkata's configuration uses.
public enum TOMLValue: Sendable, Equatable, CustomStringConvertible {
    case string(String)
    case integer(Int64)
    case float(Double)
    case boolean(Bool)
    case array([TOMLValue])

    public var description: String {
        switch self {
        case .string(let text): "\"\(text)\""
        case .integer(let number): String(number)
        case .float(let number): String(number)
        case .boolean(let flag): String(flag)
        case .array(let values): "[\(values.map(\.description).joined(separator: ", "))]"
        }
    }

    /// The TOML type name, for error messages.
    public var typeName: String {
        switch self {
        case .string: "string"
        case .integer: "integer"
        case .float: "float"
        case .boolean: "boolean"
        case .array: "array"
        }
    }
}

/// A TOML document that does not parse, with the line at fault.
public struct TOMLSyntaxError: Error, Sendable, Equatable, CustomStringConvertible {
    public var line: Int
    public var message: String
    public var description: String { "line \(line): \(message)" }
}

private struct Parser {
    let text: [UInt8]
    var index = 0
    var line = 1

    init(text: [UInt8]) { self.text = text }

    var peek: UInt8? { index < text.count ? text[index] : nil }

    mutating func advance() {
        if text[index] == UInt8(ascii: "\n") { line += 1 }
        index += 1
    }

    /// Skips blank lines and comments; returns the line of the next statement, or nil at the end.
    mutating func nextLogicalStart() -> Int? {
        while let byte = peek {
            if byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\r") || byte == UInt8(ascii: "\n") {
                advance()
            } else if byte == UInt8(ascii: "#") {
                skipComment()
            } else {
                return line
            }
        }
        return nil
    }

    mutating func skipComment() {
        while let byte = peek, byte != UInt8(ascii: "\n") { advance() }
    }

    mutating func skipSpaces() {
        while let byte = peek, byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") { advance() }
    }

    /// Skips spaces, newlines and comments (inside arrays).
    mutating func skipWhitespaceAndComments() {
        while let byte = peek {
            if byte == UInt8(ascii: "#") {
                skipComment()
            } else if byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\r") || byte == UInt8(ascii: "\n") {
                advance()
            } else {
                return
            }
        }
    }

    func error(_ message: String) -> TOMLSyntaxError { TOMLSyntaxError(line: line, message: message) }

    mutating func expect(_ byte: UInt8, _ message: String) throws(TOMLSyntaxError) {
        skipSpaces()
        guard peek == byte else { throw error(message) }
        advance()
    }

    mutating func endOfLine() throws(TOMLSyntaxError) {
        skipSpaces()
        if peek == UInt8(ascii: "#") { skipComment() }
        if peek == UInt8(ascii: "\r") { advance() }
        guard peek == nil || peek == UInt8(ascii: "\n") else {
            throw error("unexpected text after the value: \(String(decoding: text[index..<min(text.count, index + 20)], as: UTF8.self))")
        }
    }

    mutating func tableHeader() throws(TOMLSyntaxError) -> String {
        advance()  // [
        if peek == UInt8(ascii: "[") { throw error("arrays of tables ([[...]]) are not supported here") }
        let name = try key()
        try expect(UInt8(ascii: "]"), "expected ']' to close the table header")
        return name
    }

    mutating func consume(_ byte: UInt8) -> Bool {
        guard peek == byte else { return false }
        advance()
        return true
    }

    /// A key; dotted keys are joined with ".", so `a.b = 1` reads like `[…]` key "a.b".
    mutating func key() throws(TOMLSyntaxError) -> String {
        var parts: [String] = []
        repeat {
            skipSpaces()
            parts.append(try simpleKey())
            skipSpaces()
        } while consume(UInt8(ascii: "."))
        return parts.joined(separator: ".")
    }

    mutating func simpleKey() throws(TOMLSyntaxError) -> String {
        if peek == UInt8(ascii: "\"") || peek == UInt8(ascii: "'") { return try string() }
        let start = index
        while let byte = peek, isBareKeyByte(byte) { advance() }
        guard index > start else { throw error("expected a key") }
        return String(decoding: text[start..<index], as: UTF8.self)
    }

    func isBareKeyByte(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
            || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
    }

    mutating func value() throws(TOMLSyntaxError) -> TOMLValue {
        skipSpaces()
        guard let byte = peek else { throw error("expected a value") }
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "'"):
            return .string(try string())
        case UInt8(ascii: "["):
            return try array()
        case UInt8(ascii: "{"):
            throw error("inline tables are not supported here")
        default:
            let start = index
            while let next = peek,
                !(next == UInt8(ascii: " ") || next == UInt8(ascii: "\t") || next == UInt8(ascii: "\r") || next == UInt8(ascii: "\n")
                    || next == UInt8(ascii: "#") || next == UInt8(ascii: ",") || next == UInt8(ascii: "]"))
            {
                advance()
            }
            let word = String(decoding: text[start..<index], as: UTF8.self)
            if word == "true" { return .boolean(true) }
            if word == "false" { return .boolean(false) }
            let digits = word.filter { $0 != "_" }
            if let number = Int64(digits) { return .integer(number) }
            if digits.hasPrefix("0x"), let number = Int64(digits.dropFirst(2), radix: 16) { return .integer(number) }
            if digits.hasPrefix("0o"), let number = Int64(digits.dropFirst(2), radix: 8) { return .integer(number) }
            if let number = Double(digits), digits.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }) { return .float(number) }
            throw error(word.isEmpty ? "expected a value" : "\"\(word)\" is not a TOML value (strings need quotes)")
        }
    }

    mutating func array() throws(TOMLSyntaxError) -> TOMLValue {
        advance()  // [
        var values: [TOMLValue] = []
        while true {
            skipWhitespaceAndComments()
            if consume(UInt8(ascii: "]")) { return .array(values) }
            values.append(try value())
            skipWhitespaceAndComments()
            if consume(UInt8(ascii: "]")) { return .array(values) }
            guard consume(UInt8(ascii: ",")) else { throw error("expected ',' or ']' in an array") }
        }
    }

    mutating func string() throws(TOMLSyntaxError) -> String {
        let quote = text[index]
        if index + 2 < text.count, text[index + 1] == quote, text[index + 2] == quote {
            throw error("multi-line strings are not supported here")
        }
        advance()
        var bytes: [UInt8] = []
        while true {
            guard let byte = peek, byte != UInt8(ascii: "\n") else { throw error("unterminated string") }
            advance()
            if byte == quote { return String(decoding: bytes, as: UTF8.self) }
            if quote == UInt8(ascii: "\""), byte == UInt8(ascii: "\\") {
                guard let escaped = peek else { throw error("unterminated string") }
                advance()
                switch escaped {
                case UInt8(ascii: "n"): bytes.append(UInt8(ascii: "\n"))
                case UInt8(ascii: "t"): bytes.append(UInt8(ascii: "\t"))
                case UInt8(ascii: "r"): bytes.append(UInt8(ascii: "\r"))
                case UInt8(ascii: "\\"), UInt8(ascii: "\""): bytes.append(escaped)
                case UInt8(ascii: "u"), UInt8(ascii: "U"):
                    let length = escaped == UInt8(ascii: "u") ? 4 : 8
                    guard index + length <= text.count,
                        let scalarValue = UInt32(String(decoding: text[index..<index + length], as: UTF8.self), radix: 16),
                        let scalar = Unicode.Scalar(scalarValue)
                    else { throw error("bad unicode escape in string") }
                    for _ in 0..<length { advance() }
                    bytes.append(contentsOf: Array(String(Character(scalar)).utf8))
                default:
                    throw error("unknown escape \\\(Character(Unicode.Scalar(escaped))) in string")
                }
            } else {
                bytes.append(byte)
            }
        }
    }
}
