/// Compact JSON text for a `JSONValue`: object keys sorted, integers without a fraction,
/// other numbers in their shortest round-trip form, strings escaped per RFC 8259.
extension JSONValue {
    public func serialized() -> String {
        var out = ""
        JSONValue.write(self, into: &out)
        return out
    }

    /// A number from a `Float`, keeping its short decimal form (0.1, not 0.10000000149).
    public static func float(_ value: Float) -> JSONValue {
        guard value.isFinite else { return .null }
        return .number(Double("\(value)") ?? Double(value))
    }

    public static func int(_ value: Int) -> JSONValue { .number(Double(value)) }

    public static func optional(_ value: String?) -> JSONValue { value.map(JSONValue.string) ?? .null }

    static func write(_ value: JSONValue, into out: inout String) {
        switch value {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .number(let d):
            if !d.isFinite {
                out += "null"
            } else if d == d.rounded() && abs(d) < 1e15 {
                out += String(Int64(d))
            } else {
                out += "\(d)"
            }
        case .string(let s): writeString(s, into: &out)
        case .array(let items):
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                write(item, into: &out)
            }
            out += "]"
        case .object(let fields):
            writeObject(fields.keys.sorted(), fields, into: &out)
        case .orderedObject(let keys, let fields):
            writeObject(keys, fields, into: &out)
        }
    }

    static func writeObject(_ keys: [String], _ fields: [String: JSONValue], into out: inout String) {
            out += "{"
            for (i, key) in keys.enumerated() {
                if i > 0 { out += "," }
                writeString(key, into: &out)
                out += ":"
                write(fields[key] ?? .null, into: &out)
            }
            out += "}"
    }

    /// `s` as a JSON string literal, the one escaper of the project (the server's writer,
    /// chat templates' `tojson`, benchmark reports): quote, backslash and control characters
    /// (U+0000–U+001F) escaped, the short forms where JSON has them, everything else as is —
    /// what Python's `json.dumps(ensure_ascii=False)` writes, so templates render as in
    /// transformers.
    public static func writeString(_ s: String, into out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }
}
