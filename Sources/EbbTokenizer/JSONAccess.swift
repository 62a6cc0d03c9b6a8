import EbbCore
import Foundation

/// A parsed JSON value. Own small parser: `JSONSerialization` on Linux cannot tell `1` from
/// `true`, and tokenizer files need exact integers and strings.
enum TokJSON: Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([TokJSON])
    case object(JSONObject)

    static func parse(_ data: Data, what: String) throws -> TokJSON {
        var parser = Parser(bytes: [UInt8](data))
        do {
            parser.skipWhitespace()
            let value = try parser.value(depth: 0)
            parser.skipWhitespace()
            guard parser.pos == parser.bytes.count else { throw parser.fail("unexpected trailing characters") }
            return value
        } catch let error as EbbError {
            throw EbbError(.tokenizer, "\(what) is not valid JSON: \(error.message)")
        }
    }

    var isNull: Bool { if case .null = self { return true } else { return false } }

    subscript(key: String) -> TokJSON? {
        if case .object(let dict) = self { return dict[key] }
        return nil
    }


    private struct Parser {
        let bytes: [UInt8]
        var pos = 0

        func fail(_ message: String) -> EbbError {
            EbbError(.tokenizer, "\(message) at byte \(pos)")
        }

        mutating func skipWhitespace() {
            while pos < bytes.count {
                switch bytes[pos] {
                case 0x20, 0x09, 0x0A, 0x0D: pos += 1
                default: return
                }
            }
        }

        mutating func value(depth: Int) throws -> TokJSON {
            guard depth < 512 else { throw fail("nesting too deep") }
            guard pos < bytes.count else { throw fail("unexpected end of input") }
            switch bytes[pos] {
            case UInt8(ascii: "{"):
                pos += 1
                var dict = JSONObject()
                skipWhitespace()
                if pos < bytes.count, bytes[pos] == UInt8(ascii: "}") { pos += 1; return .object(dict) }
                while true {
                    skipWhitespace()
                    guard pos < bytes.count, bytes[pos] == UInt8(ascii: "\"") else { throw fail("expected a key") }
                    let key = try string()
                    skipWhitespace()
                    guard pos < bytes.count, bytes[pos] == UInt8(ascii: ":") else { throw fail("expected ':'") }
                    pos += 1
                    skipWhitespace()
                    dict.entries.append((key, try value(depth: depth + 1)))
                    skipWhitespace()
                    guard pos < bytes.count else { throw fail("unexpected end of input") }
                    if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
                    if bytes[pos] == UInt8(ascii: "}") { pos += 1; return .object(dict) }
                    throw fail("expected ',' or '}'")
                }
            case UInt8(ascii: "["):
                pos += 1
                var list: [TokJSON] = []
                skipWhitespace()
                if pos < bytes.count, bytes[pos] == UInt8(ascii: "]") { pos += 1; return .array(list) }
                while true {
                    skipWhitespace()
                    list.append(try value(depth: depth + 1))
                    skipWhitespace()
                    guard pos < bytes.count else { throw fail("unexpected end of input") }
                    if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
                    if bytes[pos] == UInt8(ascii: "]") { pos += 1; return .array(list) }
                    throw fail("expected ',' or ']'")
                }
            case UInt8(ascii: "\""):
                return .string(try string())
            case UInt8(ascii: "t"):
                try literal("true"); return .bool(true)
            case UInt8(ascii: "f"):
                try literal("false"); return .bool(false)
            case UInt8(ascii: "n"):
                try literal("null"); return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                return .number(try number())
            default:
                throw fail("unexpected character")
            }
        }

        mutating func literal(_ word: String) throws {
            for b in word.utf8 {
                guard pos < bytes.count, bytes[pos] == b else { throw fail("invalid literal") }
                pos += 1
            }
        }

        mutating func number() throws -> Double {
            let start = pos
            if bytes[pos] == UInt8(ascii: "-") { pos += 1 }
            func digits() -> Int {
                let s = pos
                while pos < bytes.count, bytes[pos] >= 0x30, bytes[pos] <= 0x39 { pos += 1 }
                return pos - s
            }
            guard digits() > 0 else { throw fail("invalid number") }
            if pos < bytes.count, bytes[pos] == UInt8(ascii: ".") {
                pos += 1
                guard digits() > 0 else { throw fail("invalid number") }
            }
            if pos < bytes.count, bytes[pos] == UInt8(ascii: "e") || bytes[pos] == UInt8(ascii: "E") {
                pos += 1
                if pos < bytes.count, bytes[pos] == UInt8(ascii: "+") || bytes[pos] == UInt8(ascii: "-") { pos += 1 }
                guard digits() > 0 else { throw fail("invalid number") }
            }
            let text = String(decoding: bytes[start..<pos], as: UTF8.self)
            guard let d = Double(text) else { throw fail("invalid number") }
            return d
        }

        mutating func hex4() throws -> UInt32 {
            guard pos + 4 <= bytes.count else { throw fail("truncated \\u escape") }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = bytes[pos]
                let d: UInt32
                switch c {
                case 0x30...0x39: d = UInt32(c - 0x30)
                case 0x41...0x46: d = UInt32(c - 0x41 + 10)
                case 0x61...0x66: d = UInt32(c - 0x61 + 10)
                default: throw fail("invalid \\u escape")
                }
                v = v << 4 | d
                pos += 1
            }
            return v
        }

        /// Parses a string starting at the opening quote.
        mutating func string() throws -> String {
            pos += 1
            let start = pos
            // Fast path: no escapes.
            while pos < bytes.count {
                let c = bytes[pos]
                if c == UInt8(ascii: "\"") {
                    let s = String(decoding: bytes[start..<pos], as: UTF8.self)
                    pos += 1
                    return s
                }
                if c == UInt8(ascii: "\\") { break }
                if c < 0x20 { throw fail("control character in string") }
                pos += 1
            }
            var out = [UInt8](bytes[start..<pos])
            while pos < bytes.count {
                let c = bytes[pos]
                if c == UInt8(ascii: "\"") {
                    pos += 1
                    return String(decoding: out, as: UTF8.self)
                }
                if c < 0x20 { throw fail("control character in string") }
                if c != UInt8(ascii: "\\") { out.append(c); pos += 1; continue }
                pos += 1
                guard pos < bytes.count else { break }
                let e = bytes[pos]
                pos += 1
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
                    var v = try hex4()
                    if (0xD800...0xDBFF).contains(v), pos + 1 < bytes.count,
                       bytes[pos] == UInt8(ascii: "\\"), bytes[pos + 1] == UInt8(ascii: "u") {
                        let save = pos
                        pos += 2
                        let low = try hex4()
                        if (0xDC00...0xDFFF).contains(low) {
                            v = 0x10000 + ((v - 0xD800) << 10) + (low - 0xDC00)
                        } else {
                            pos = save
                        }
                    }
                    let scalar = Unicode.Scalar(v) ?? "\u{FFFD}"
                    out.append(contentsOf: Array(String(Character(scalar)).utf8))
                default:
                    throw fail("invalid escape")
                }
            }
            throw fail("unterminated string")
        }
    }
}

/// Typed reads out of `TokJSON`; every mismatch becomes an `EbbError`.
enum JSONAccess {
    static func object(_ value: TokJSON?, _ context: String) throws -> JSONObject {
        guard case .object(let dict)? = value else {
            throw EbbError(.tokenizer, "\(context): expected a JSON object")
        }
        return dict
    }

    static func array(_ value: TokJSON?, _ context: String) throws -> [TokJSON] {
        guard case .array(let list)? = value else {
            throw EbbError(.tokenizer, "\(context): expected a JSON array")
        }
        return list
    }

    static func string(_ value: TokJSON?, _ context: String) throws -> String {
        guard case .string(let s)? = value else {
            throw EbbError(.tokenizer, "\(context): expected a string")
        }
        return s
    }

    static func optionalString(_ value: TokJSON?, _ context: String) throws -> String? {
        if value == nil || value?.isNull == true { return nil }
        return try string(value, context)
    }

    static func int(_ value: TokJSON?, _ context: String) throws -> Int {
        guard case .number(let d)? = value, d.isFinite, d == d.rounded(), abs(d) < 9.0e15 else {
            throw EbbError(.tokenizer, "\(context): expected an integer")
        }
        return Int(d)
    }

    static func bool(_ value: TokJSON?, default fallback: Bool, _ context: String) throws -> Bool {
        switch value {
        case nil, .null?: return fallback
        case .bool(let b)?: return b
        default: throw EbbError(.tokenizer, "\(context): expected true or false")
        }
    }

    /// The `type` field of a pipeline stage.
    static func type(_ dict: JSONObject, _ context: String) throws -> String {
        guard case .string(let t)? = dict["type"] else {
            throw EbbError(.tokenizer, "\(context): missing \"type\"")
        }
        return t
    }
}


/// A JSON object's members in file order. Keys compare by UTF-8 bytes: a vocabulary may hold
/// canonically equivalent strings (NFC and NFD forms) as different tokens, which Swift's
/// `String` keys would merge.
struct JSONObject: Sendable {
    var entries: [(key: String, value: TokJSON)] = []

    var count: Int { entries.count }

    /// The last member named `key` (later duplicates win, as in serde).
    subscript(key: String) -> TokJSON? {
        for entry in entries.reversed() where entry.key.utf8.elementsEqual(key.utf8) { return entry.value }
        return nil
    }
}
