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
        do {
            return TokJSON(try JSONParser.parse([UInt8](data)))
        } catch {
            throw EbbError(.tokenizer, "\(what) is not valid JSON: \(error.description)")
        }
    }

    /// EbbCore's parse tree, read for tokenizer files (numbers as doubles, members in order).
    init(_ node: JSONNode) {
        switch node {
        case .null: self = .null
        case .bool(let b): self = .bool(b)
        case .string(let s): self = .string(s)
        case .number(let text): self = .number(Double(text) ?? .nan)
        case .array(let items): self = .array(items.map(TokJSON.init))
        case .object(let members): self = .object(JSONObject(entries: members.map { (key: $0.0, value: TokJSON($0.1)) }))
        }
    }

    var isNull: Bool { if case .null = self { return true } else { return false } }

    subscript(key: String) -> TokJSON? {
        if case .object(let dict) = self { return dict[key] }
        return nil
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
