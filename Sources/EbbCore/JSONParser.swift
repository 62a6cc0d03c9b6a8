/// A parsed JSON document as written: object members in order (duplicates kept, so they can
/// be reported), numbers as their text (so integers are exact). `JSONParser` makes it; each
/// module reads it into its own types (`JSONNode`, tokenizer files, Jinja values).
public enum JSONNode: Equatable, Sendable {
    case object([(String, JSONNode)])
    case array([JSONNode])
    case string(String)
    case number(String)
    case bool(Bool)
    case null

    public static func == (a: JSONNode, b: JSONNode) -> Bool {
        switch (a, b) {
        case let (.object(x), .object(y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        case let (.array(x), .array(y)): return x == y
        case let (.string(x), .string(y)): return x == y
        case let (.number(x), .number(y)): return x == y
        case let (.bool(x), .bool(y)): return x == y
        case (.null, .null): return true
        default: return false
        }
    }

    public var typeName: String {
        switch self {
        case .object: return "an object"
        case .array: return "an array"
        case .string: return "a string"
        case .number: return "a number"
        case .bool: return "a boolean"
        case .null: return "null"
        }
    }

    /// The value as an exact integer if it is written as one (no fraction or exponent) and fits in Int.
    public var exactInt: Int? {
        guard case let .number(text) = self else { return nil }
        guard !text.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }) else { return nil }
        return Int(text)
    }
}

public struct JSONParseError: Error, Sendable {
    public let offset: Int
    public let reason: String
    public var description: String { "\(reason) at byte \(offset)" }
}

/// The one strict JSON parser: raw bytes in, never traps on any input, nesting limited to
/// `maxDepth`, trailing data refused.
public struct JSONParser {
    private let bytes: UnsafeRawBufferPointer
    private var i = 0
    private let maxDepth: Int

    /// Parses one JSON value that fills `bytes`, allowing surrounding whitespace.
    public static func parse(_ bytes: UnsafeRawBufferPointer, maxDepth: Int = 512) throws(JSONParseError) -> JSONNode {
        var p = JSONParser(bytes: bytes, maxDepth: maxDepth)
        p.skipWhitespace()
        let value = try p.parseValue(depth: 0)
        p.skipWhitespace()
        if p.i != bytes.count { throw JSONParseError(offset: p.i, reason: "unexpected trailing data") }
        return value
    }

    public static func parse(_ array: [UInt8], maxDepth: Int = 512) throws(JSONParseError) -> JSONNode {
        let result: Result<JSONNode, JSONParseError> = array.withUnsafeBytes { raw in
            do throws(JSONParseError) { return .success(try parse(raw, maxDepth: maxDepth)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    private init(bytes: UnsafeRawBufferPointer, maxDepth: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    private func fail(_ reason: String) -> JSONParseError { JSONParseError(offset: i, reason: reason) }

    private var atEnd: Bool { i >= bytes.count }
    private var peek: UInt8? { i < bytes.count ? bytes[i] : nil }

    private mutating func skipWhitespace() {
        while i < bytes.count {
            switch bytes[i] {
            case 0x20, 0x09, 0x0A, 0x0D: i += 1
            default: return
            }
        }
    }

    private mutating func expect(_ literal: String) throws(JSONParseError) {
        for b in literal.utf8 {
            guard i < bytes.count, bytes[i] == b else { throw fail("invalid literal (expected '\(literal)')") }
            i += 1
        }
    }

    private mutating func parseValue(depth: Int) throws(JSONParseError) -> JSONNode {
        guard depth < maxDepth else { throw fail("nesting deeper than \(maxDepth)") }
        guard let c = peek else { throw fail("unexpected end of JSON") }
        switch c {
        case UInt8(ascii: "{"): return try parseObject(depth: depth)
        case UInt8(ascii: "["): return try parseArray(depth: depth)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expect("true"); return .bool(true)
        case UInt8(ascii: "f"): try expect("false"); return .bool(false)
        case UInt8(ascii: "n"): try expect("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try parseNumber())
        default: throw fail("unexpected character 0x\(String(c, radix: 16))")
        }
    }

    private mutating func parseObject(depth: Int) throws(JSONParseError) -> JSONNode {
        i += 1 // {
        var members: [(String, JSONNode)] = []
        skipWhitespace()
        if peek == UInt8(ascii: "}") { i += 1; return .object(members) }
        while true {
            skipWhitespace()
            guard peek == UInt8(ascii: "\"") else { throw fail("expected a string key") }
            let key = try parseString()
            skipWhitespace()
            guard peek == UInt8(ascii: ":") else { throw fail("expected ':' after key") }
            i += 1
            skipWhitespace()
            let value = try parseValue(depth: depth + 1)
            members.append((key, value))
            skipWhitespace()
            guard let c = peek else { throw fail("unterminated object") }
            if c == UInt8(ascii: ",") { i += 1; continue }
            if c == UInt8(ascii: "}") { i += 1; return .object(members) }
            throw fail("expected ',' or '}' in object")
        }
    }

    private mutating func parseArray(depth: Int) throws(JSONParseError) -> JSONNode {
        i += 1 // [
        var items: [JSONNode] = []
        skipWhitespace()
        if peek == UInt8(ascii: "]") { i += 1; return .array(items) }
        while true {
            skipWhitespace()
            items.append(try parseValue(depth: depth + 1))
            skipWhitespace()
            guard let c = peek else { throw fail("unterminated array") }
            if c == UInt8(ascii: ",") { i += 1; continue }
            if c == UInt8(ascii: "]") { i += 1; return .array(items) }
            throw fail("expected ',' or ']' in array")
        }
    }

    private mutating func parseHex4() throws(JSONParseError) -> UInt32 {
        var v: UInt32 = 0
        for _ in 0..<4 {
            guard let c = peek else { throw fail("truncated \\u escape") }
            let d: UInt32
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - UInt8(ascii: "A") + 10)
            default: throw fail("invalid hex digit in \\u escape")
            }
            v = v << 4 | d
            i += 1
        }
        return v
    }

    private mutating func parseString() throws(JSONParseError) -> String {
        i += 1 // opening quote
        var out: [UInt8] = []
        while true {
            guard let c = peek else { throw fail("unterminated string") }
            i += 1
            switch c {
            case UInt8(ascii: "\""):
                guard let s = String(validating: out, as: UTF8.self) else {
                    throw fail("string is not valid UTF-8")
                }
                return s
            case UInt8(ascii: "\\"):
                guard let e = peek else { throw fail("unterminated escape") }
                i += 1
                switch e {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5C)
                case UInt8(ascii: "/"): out.append(0x2F)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try parseHex4()
                    if (0xD800...0xDBFF).contains(scalar) {
                        guard peek == UInt8(ascii: "\\") else { throw fail("unpaired surrogate in \\u escape") }
                        i += 1
                        guard peek == UInt8(ascii: "u") else { throw fail("unpaired surrogate in \\u escape") }
                        i += 1
                        let low = try parseHex4()
                        guard (0xDC00...0xDFFF).contains(low) else { throw fail("unpaired surrogate in \\u escape") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00...0xDFFF).contains(scalar) {
                        throw fail("unpaired surrogate in \\u escape")
                    }
                    guard let u = Unicode.Scalar(scalar) else { throw fail("invalid \\u escape") }
                    out.append(contentsOf: Array(String(Character(u)).utf8))
                default:
                    throw fail("invalid escape '\\\(Character(Unicode.Scalar(e)))'")
                }
            default:
                guard c >= 0x20 else { throw fail("control character in string") }
                out.append(c)
            }
        }
    }

    private mutating func parseNumber() throws(JSONParseError) -> String {
        let start = i
        if peek == UInt8(ascii: "-") { i += 1 }
        guard let first = peek, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else {
            throw fail("invalid number")
        }
        if first == UInt8(ascii: "0") {
            i += 1
        } else {
            while let c = peek, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) { i += 1 }
        }
        if peek == UInt8(ascii: ".") {
            i += 1
            guard let c = peek, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) else { throw fail("invalid number") }
            while let c = peek, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) { i += 1 }
        }
        if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
            i += 1
            if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { i += 1 }
            guard let c = peek, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) else { throw fail("invalid number") }
            while let c = peek, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) { i += 1 }
        }
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
    }
}
