/// Turns an `Encodable` value into a `JSONValue`, which `serialized()` then writes: the
/// project's one JSON writer serves typed response bodies too (no second writer such as
/// Foundation's `JSONEncoder`, whose output differs on Linux).
///
/// Conventions, chosen for OpenAI-style bodies:
/// - object keys keep the order they are encoded in (a synthesized `Encodable` encodes
///   properties in declaration order);
/// - camelCase property names become snake_case keys (`finishReason` → `finish_reason`);
/// - an optional property that is nil is written as `null` (every declared field is
///   present, as in OpenAI's and vLLM's responses); a type that must leave a key out writes
///   its own `encode(to:)`;
/// - a `JSONValue` property is embedded as it is; a `Float` keeps its short decimal form.
public enum JSONValueEncoder {
    public static func encode<T: Encodable>(_ value: T) throws -> JSONValue {
        let root = Node()
        try root.store(value, path: [])
        return root.value
    }

    /// `finishReason` → `finish_reason`; keys already in snake case are unchanged.
    static func snakeCase(_ key: String) -> String {
        var out = ""
        for c in key {
            if c.isUppercase {
                if !out.isEmpty { out.append("_") }
                out.append(contentsOf: c.lowercased())
            } else {
                out.append(c)
            }
        }
        return out
    }
}

/// One value under construction (containers are filled after they are handed out, so the
/// tree is built from references and read out at the end).
private final class Node {
    enum Content {
        case empty
        case value(JSONValue)
        case object(keys: [String], nodes: [String: Node])
        case array([Node])
    }

    var content: Content = .empty

    var value: JSONValue {
        switch content {
        case .empty: return .null
        case .value(let v): return v
        case .object(let keys, let nodes): return .orderedObject(keys: keys, values: nodes.mapValues(\.value))
        case .array(let nodes): return .array(nodes.map(\.value))
        }
    }

    func store<T: Encodable>(_ value: T, path: [any CodingKey]) throws {
        if let json = value as? JSONValue {
            content = .value(json)
        } else if let f = value as? Float {
            content = .value(.float(f))
        } else {
            try value.encode(to: NodeEncoder(node: self, codingPath: path))
        }
    }

    func child(forKey key: String) -> Node {
        var (keys, nodes): ([String], [String: Node]) = ([], [:])
        if case .object(let k, let n) = content { (keys, nodes) = (k, n) }
        if let existing = nodes[key] { return existing }
        let node = Node()
        keys.append(key)
        nodes[key] = node
        content = .object(keys: keys, nodes: nodes)
        return node
    }

    func appendChild() -> Node {
        var nodes: [Node] = []
        if case .array(let n) = content { nodes = n }
        let node = Node()
        nodes.append(node)
        content = .array(nodes)
        return node
    }

    func makeObject() { if case .object = content {} else { content = .object(keys: [], nodes: [:]) } }
    func makeArray() { if case .array = content {} else { content = .array([]) } }
}

private struct NodeEncoder: Encoder {
    let node: Node
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        node.makeObject()
        return KeyedEncodingContainer(KeyedNodeContainer<Key>(node: node, codingPath: codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        node.makeArray()
        return UnkeyedNodeContainer(node: node, codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        SingleNodeContainer(node: node, codingPath: codingPath)
    }
}

private struct IndexKey: CodingKey {
    var stringValue: String { "\(intValue ?? 0)" }
    var intValue: Int?
    init(_ i: Int) { intValue = i }
    init?(stringValue: String) { nil }
    init?(intValue: Int) { self.intValue = intValue }
}

private struct KeyedNodeContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let node: Node
    let codingPath: [any CodingKey]

    private func child(_ key: Key) -> Node { node.child(forKey: JSONValueEncoder.snakeCase(key.stringValue)) }

    mutating func encodeNil(forKey key: Key) throws { child(key).content = .value(.null) }
    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        try child(key).store(value, path: codingPath + [key])
    }
    // A nil optional is written as null (see JSONValueEncoder).
    mutating func encodeIfPresent<T: Encodable>(_ value: T?, forKey key: Key) throws { try encodeOrNull(value, key) }
    mutating func encodeIfPresent(_ value: Bool?, forKey key: Key) throws { try encodeOrNull(value, key) }
    mutating func encodeIfPresent(_ value: String?, forKey key: Key) throws { try encodeOrNull(value, key) }
    mutating func encodeIfPresent(_ value: Double?, forKey key: Key) throws { try encodeOrNull(value, key) }
    mutating func encodeIfPresent(_ value: Float?, forKey key: Key) throws { try encodeOrNull(value, key) }
    mutating func encodeIfPresent(_ value: Int?, forKey key: Key) throws { try encodeOrNull(value, key) }
    private mutating func encodeOrNull<T: Encodable>(_ value: T?, _ key: Key) throws {
        if let value { try encode(value, forKey: key) } else { try encodeNil(forKey: key) }
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type,
                                                       forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        let c = child(key)
        c.makeObject()
        return KeyedEncodingContainer(KeyedNodeContainer<NestedKey>(node: c, codingPath: codingPath + [key]))
    }
    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        let c = child(key)
        c.makeArray()
        return UnkeyedNodeContainer(node: c, codingPath: codingPath + [key])
    }
    mutating func superEncoder() -> any Encoder { NodeEncoder(node: node.child(forKey: "super"), codingPath: codingPath) }
    mutating func superEncoder(forKey key: Key) -> any Encoder { NodeEncoder(node: child(key), codingPath: codingPath + [key]) }
}

private struct UnkeyedNodeContainer: UnkeyedEncodingContainer {
    let node: Node
    let codingPath: [any CodingKey]
    var count: Int {
        if case .array(let n) = node.content { return n.count }
        return 0
    }

    mutating func encodeNil() throws { node.appendChild().content = .value(.null) }
    mutating func encode<T: Encodable>(_ value: T) throws {
        let path = codingPath + [IndexKey(count)]
        try node.appendChild().store(value, path: path)
    }
    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let c = node.appendChild()
        c.makeObject()
        return KeyedEncodingContainer(KeyedNodeContainer<NestedKey>(node: c, codingPath: codingPath))
    }
    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let c = node.appendChild()
        c.makeArray()
        return UnkeyedNodeContainer(node: c, codingPath: codingPath)
    }
    mutating func superEncoder() -> any Encoder { NodeEncoder(node: node.appendChild(), codingPath: codingPath) }
}

private struct SingleNodeContainer: SingleValueEncodingContainer {
    let node: Node
    let codingPath: [any CodingKey]

    mutating func encodeNil() throws { node.content = .value(.null) }
    mutating func encode(_ value: Bool) throws { node.content = .value(.bool(value)) }
    mutating func encode(_ value: String) throws { node.content = .value(.string(value)) }
    mutating func encode(_ value: Double) throws { node.content = .value(.number(value)) }
    mutating func encode(_ value: Float) throws { node.content = .value(.float(value)) }
    mutating func encode(_ value: Int) throws { node.content = .value(.number(Double(value))) }
    mutating func encode(_ value: Int8) throws { node.content = .value(.number(Double(value))) }
    mutating func encode(_ value: Int16) throws { node.content = .value(.number(Double(value))) }
    mutating func encode(_ value: Int32) throws { node.content = .value(.number(Double(value))) }
    mutating func encode(_ value: Int64) throws { node.content = .value(.number(Double(value))) }
    mutating func encode(_ value: UInt) throws { node.content = .value(.number(Double(value))) }
    mutating func encode(_ value: UInt8) throws { node.content = .value(.number(Double(value))) }
    mutating func encode(_ value: UInt16) throws { node.content = .value(.number(Double(value))) }
    mutating func encode(_ value: UInt32) throws { node.content = .value(.number(Double(value))) }
    mutating func encode(_ value: UInt64) throws { node.content = .value(.number(Double(value))) }
    mutating func encode<T: Encodable>(_ value: T) throws { try node.store(value, path: codingPath) }
}
