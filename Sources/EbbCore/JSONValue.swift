import Foundation

/// A parsed JSON document that keeps booleans, numbers and nulls apart (Foundation's
/// `JSONSerialization` blurs booleans and numbers on Linux).
public enum JSONValue: Sendable, Equatable, Codable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])
    /// An object whose keys are written in the given order (e.g. top logprobs, most
    /// likely first). Parsing never produces it.
    case orderedObject(keys: [String], values: [String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .null
        } else if let b = try? c.decode(Bool.self) {
            self = .bool(b)
        } else if let d = try? c.decode(Double.self) {
            self = .number(d)
        } else if let s = try? c.decode(String.self) {
            self = .string(s)
        } else if let a = try? c.decode([JSONValue].self) {
            self = .array(a)
        } else if let o = try? c.decode([String: JSONValue].self) {
            self = .object(o)
        } else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "not a JSON value")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .number(let d): try c.encode(d)
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        case .orderedObject(_, let o): try c.encode(o)
        }
    }

    /// Parses `data` with `JSONParser` (a later duplicate member wins); a syntax error is
    /// thrown as an `EbbError` with `.invalidArgument`.
    public static func parse(_ data: Data) throws -> JSONValue {
        do {
            return JSONValue(try JSONParser.parse([UInt8](data)))
        } catch {
            throw EbbError(.invalidArgument, "invalid JSON: \(error.description)")
        }
    }

    /// The parse tree as values: numbers as doubles, objects as dictionaries.
    public init(_ node: JSONNode) {
        switch node {
        case .null: self = .null
        case .bool(let b): self = .bool(b)
        case .string(let s): self = .string(s)
        case .number(let text): self = .number(Double(text) ?? .nan)
        case .array(let items): self = .array(items.map(JSONValue.init))
        case .object(let members):
            var o: [String: JSONValue] = [:]
            for (k, v) in members { o[k] = JSONValue(v) }
            self = .object(o)
        }
    }

    public var isNull: Bool { self == .null }
    public var objectValue: [String: JSONValue]? {
        switch self {
        case .object(let o), .orderedObject(_, let o): return o
        default: return nil
        }
    }
    public var arrayValue: [JSONValue]? { if case .array(let a) = self { return a } else { return nil } }
    public var stringValue: String? { if case .string(let s) = self { return s } else { return nil } }
    public var doubleValue: Double? { if case .number(let d) = self { return d } else { return nil } }
    public var boolValue: Bool? { if case .bool(let b) = self { return b } else { return nil } }
    /// The number as an integer when it is integral and in range.
    public var intValue: Int? {
        guard case .number(let d) = self, d.isFinite, d == d.rounded(), abs(d) < 9.0e15 else { return nil }
        return Int(d)
    }

    public subscript(key: String) -> JSONValue? { objectValue?[key] }

    /// A short description of the value's kind for error messages.
    public var kindDescription: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return "\(b)"
        case .number(let d): return d == d.rounded() && abs(d) < 1e15 ? "\(Int(d))" : "\(d)"
        case .string: return "a string"
        case .array: return "a list"
        case .object, .orderedObject: return "an object"
        }
    }
}
