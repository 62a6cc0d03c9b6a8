import EbbCore

/// A data value passed into a template: what JSON can hold, with Python's distinction
/// between integers and floats kept, and object keys kept in insertion order (so that
/// `tojson` reproduces Python's `json.dumps` byte for byte).
public enum JinjaValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JinjaValue])
    case object(JinjaObject)
}

/// An insertion-ordered string-keyed dictionary (Python `dict` semantics for order).
public struct JinjaObject: Sendable, Equatable {
    public private(set) var keys: [String] = []
    private var storage: [String: JinjaValue] = [:]

    public init() {}

    public init(_ pairs: [(String, JinjaValue)]) {
        for (k, v) in pairs { self[k] = v }
    }

    public var count: Int { keys.count }
    public var isEmpty: Bool { keys.isEmpty }

    public subscript(key: String) -> JinjaValue? {
        get { storage[key] }
        set {
            if let newValue {
                if storage.updateValue(newValue, forKey: key) == nil { keys.append(key) }
            } else if storage.removeValue(forKey: key) != nil {
                keys.removeAll { $0 == key }
            }
        }
    }

    /// Key/value pairs in insertion order.
    public var pairs: [(key: String, value: JinjaValue)] {
        keys.compactMap { k in storage[k].map { (k, $0) } }
    }

    public static func == (a: JinjaObject, b: JinjaObject) -> Bool {
        a.keys == b.keys && a.storage == b.storage
    }
}

extension JinjaObject: ExpressibleByDictionaryLiteral {
    public init(dictionaryLiteral elements: (String, JinjaValue)...) {
        self.init(elements)
    }
}

extension JinjaValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral,
    ExpressibleByNilLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JinjaValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JinjaValue)...) { self = .object(JinjaObject(elements)) }
    public init(nilLiteral: ()) { self = .null }
}

extension JinjaValue {
    /// Parses JSON the way Python's `json.loads` does: object key order is kept, numbers
    /// without a fraction or exponent are integers, the rest are floats.
    public init(json data: [UInt8]) throws {
        self = try Self.parseJSON(data)
    }

    public init(jsonString: String) throws {
        try self.init(json: Array(jsonString.utf8))
    }

    /// Serializes like Python `json.dumps(value, ensure_ascii=False)` (default separators).
    public func jsonString(indent: Int? = nil, sortKeys: Bool = false) -> String {
        var out = ""
        JSONWriter(indent: indent.map { String(repeating: " ", count: max(0, $0)) }, sortKeys: sortKeys)
            .write(internalValue(self), into: &out, level: 0)
        return out
    }

    public subscript(key: String) -> JinjaValue? {
        if case .object(let o) = self { return o[key] }
        return nil
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }
}

// MARK: - JSON reading (ordered, Python-like number typing)

extension JinjaValue {
    /// EbbCore's parse tree as a Jinja value: members in order, numbers written without a
    /// fraction or exponent are integers (when they fit), the rest floats.
    init(_ node: JSONNode) {
        switch node {
        case .null: self = .null
        case .bool(let b): self = .bool(b)
        case .string(let s): self = .string(s)
        case .number(let text):
            if let i = node.exactInt { self = .int(i) } else { self = .double(Double(text) ?? .nan) }
        case .array(let items): self = .array(items.map(JinjaValue.init))
        case .object(let members): self = .object(JinjaObject(members.map { ($0.0, JinjaValue($0.1)) }))
        }
    }

    static func parseJSON(_ data: [UInt8]) throws -> JinjaValue {
        // A UTF-8 byte order mark is allowed (as Python's reader of config files allows it).
        let body = data.starts(with: [0xEF, 0xBB, 0xBF]) ? Array(data.dropFirst(3)) : data
        do {
            return JinjaValue(try JSONParser.parse(body, maxDepth: 256))
        } catch {
            throw EbbError(.invalidArgument, "invalid JSON at byte \(error.offset): \(error.reason)")
        }
    }
}
