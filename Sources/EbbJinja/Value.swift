import EbbCore

/// Insertion-ordered dictionary used by the interpreter.
struct VDict: Sendable {
    var keys: [String] = []
    var map: [String: Value] = [:]

    init() {}
    init(_ pairs: [(String, Value)]) { for (k, v) in pairs { self[k] = v } }

    subscript(key: String) -> Value? {
        get { map[key] }
        set {
            if let newValue {
                if map.updateValue(newValue, forKey: key) == nil { keys.append(key) }
            } else if map.removeValue(forKey: key) != nil {
                keys.removeAll { $0 == key }
            }
        }
    }

    var count: Int { keys.count }
    var pairs: [(String, Value)] { keys.compactMap { k in map[k].map { (k, $0) } } }
}

struct LoopState: Sendable {
    var index0: Int
    var length: Int
    var previtem: Value?
    var nextitem: Value?
    var depth0: Int
}

indirect enum Callable: Sendable {
    case global(String)
    case method(Value, String)
    case macro(Int)
    case loopCycle(Int)  // index0 of the loop it was taken from
}

/// A runtime value, following Python/Jinja semantics.
indirect enum Value: Sendable {
    case undefined(String)  // message used when the undefined value is used in an error-raising way
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case list([Value])
    case tuple([Value])
    case dict(VDict)
    case namespace(Int)
    case loop(LoopState)
    case callable(Callable)

    init(_ j: JinjaValue) {
        switch j {
        case .null: self = .none
        case .bool(let b): self = .bool(b)
        case .int(let i): self = .int(i)
        case .double(let d): self = .float(d)
        case .string(let s): self = .string(s)
        case .array(let a): self = .list(a.map(Value.init))
        case .object(let o): self = .dict(VDict(o.pairs.map { ($0.key, Value($0.value)) }))
        }
    }

    var isUndefined: Bool { if case .undefined = self { return true } else { return false } }
    var isNone: Bool { if case .none = self { return true } else { return false } }

    /// Python's type name, for error messages.
    var typeName: String {
        switch self {
        case .undefined: return "Undefined"
        case .none: return "NoneType"
        case .bool: return "bool"
        case .int: return "int"
        case .float: return "float"
        case .string: return "str"
        case .list: return "list"
        case .tuple: return "tuple"
        case .dict: return "dict"
        case .namespace: return "Namespace"
        case .loop: return "LoopContext"
        case .callable: return "function"
        }
    }

    var truthy: Bool {
        switch self {
        case .undefined, .none: return false
        case .bool(let b): return b
        case .int(let i): return i != 0
        case .float(let d): return d != 0
        case .string(let s): return !s.isEmpty
        case .list(let a), .tuple(let a): return !a.isEmpty
        case .dict(let d): return d.count > 0
        case .namespace, .loop, .callable: return true
        }
    }

    /// Python `str(x)`.
    var str: String {
        switch self {
        case .undefined: return ""
        case .string(let s): return s
        default: return repr
        }
    }

    /// Python `repr(x)`.
    var repr: String {
        switch self {
        case .undefined: return "Undefined"
        case .none: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return String(i)
        case .float(let d): return pyFloatRepr(d)
        case .string(let s): return pyStringRepr(s)
        case .list(let a): return "[" + a.map(\.repr).joined(separator: ", ") + "]"
        case .tuple(let a):
            if a.count == 1 { return "(" + a[0].repr + ",)" }
            return "(" + a.map(\.repr).joined(separator: ", ") + ")"
        case .dict(let d):
            return "{" + d.pairs.map { pyStringRepr($0.0) + ": " + $0.1.repr }.joined(separator: ", ") + "}"
        case .namespace: return "<Namespace>"
        case .loop(let l): return "<LoopContext \(l.index0 + 1)/\(l.length)>"
        case .callable: return "<function>"
        }
    }
}

// MARK: - Python formatting

/// Python `repr(float)`: shortest round-trip digits, exponent form when the decimal
/// exponent is < -4 or >= 16.
func pyFloatRepr(_ d: Double) -> String {
    if d.isNaN { return "nan" }
    if d.isInfinite { return d < 0 ? "-inf" : "inf" }
    if d == 0 { return d.sign == .minus ? "-0.0" : "0.0" }
    let neg = d < 0
    let s = "\(Swift.abs(d))"  // shortest round-trip representation
    var mantissa = Substring(s)
    var exp = 0
    if let e = s.firstIndex(where: { $0 == "e" || $0 == "E" }) {
        mantissa = s[s.startIndex..<e]
        exp = Int(s[s.index(after: e)...]) ?? 0
    }
    var intPart = mantissa
    var frac: Substring = ""
    if let dot = mantissa.firstIndex(of: ".") {
        intPart = mantissa[mantissa.startIndex..<dot]
        frac = mantissa[mantissa.index(after: dot)...]
    }
    var digits = Array(intPart + frac)
    var point = intPart.count + exp
    while let f = digits.first, f == "0", digits.count > 1 { digits.removeFirst(); point -= 1 }
    while let l = digits.last, l == "0", digits.count > 1 { digits.removeLast() }
    var out = neg ? "-" : ""
    if point > -4 && point <= 16 {
        if point <= 0 {
            out += "0." + String(repeating: "0", count: -point) + String(digits)
        } else if point >= digits.count {
            out += String(digits) + String(repeating: "0", count: point - digits.count) + ".0"
        } else {
            out += String(digits[0..<point]) + "." + String(digits[point...])
        }
    } else {
        let e = point - 1
        out += String(digits[0])
        if digits.count > 1 { out += "." + String(digits[1...]) }
        let ae = Swift.abs(e)
        out += (e < 0 ? "e-" : "e+") + (ae < 10 ? "0" : "") + String(ae)
    }
    return out
}

func isPrintableScalar(_ u: Unicode.Scalar) -> Bool {
    if u == " " { return true }
    switch u.properties.generalCategory {
    case .control, .format, .surrogate, .privateUse, .unassigned, .lineSeparator, .paragraphSeparator,
        .spaceSeparator:
        return false
    default:
        return true
    }
}

/// Python `repr(str)`.
func pyStringRepr(_ s: String) -> String {
    let hasSingle = s.unicodeScalars.contains("'")
    let hasDouble = s.unicodeScalars.contains("\"")
    let quote: Unicode.Scalar = (hasSingle && !hasDouble) ? "\"" : "'"
    var out = String.UnicodeScalarView()
    out.append(quote)
    for u in s.unicodeScalars {
        switch u {
        case quote, "\\": out.append("\\"); out.append(u)
        case "\n": out.append(contentsOf: "\\n".unicodeScalars)
        case "\r": out.append(contentsOf: "\\r".unicodeScalars)
        case "\t": out.append(contentsOf: "\\t".unicodeScalars)
        default:
            if isPrintableScalar(u) {
                out.append(u)
            } else {
                let v = u.value
                let hex = String(v, radix: 16)
                if v < 0x100 {
                    out.append(contentsOf: ("\\x" + String(repeating: "0", count: 2 - hex.count) + hex).unicodeScalars)
                } else if v < 0x10000 {
                    out.append(contentsOf: ("\\u" + String(repeating: "0", count: 4 - hex.count) + hex).unicodeScalars)
                } else {
                    out.append(contentsOf: ("\\U" + String(repeating: "0", count: 8 - hex.count) + hex).unicodeScalars)
                }
            }
        }
    }
    out.append(quote)
    return String(out)
}

/// Python `str.isspace()` for one code point.
func pyIsSpace(_ u: Unicode.Scalar) -> Bool {
    switch u.value {
    case 0x09...0x0D, 0x1C...0x1F, 0x20, 0x85, 0xA0: return true
    case 0..<0x80: return false
    default: return u.properties.isWhitespace
    }
}

// MARK: - JSON output (Python json.dumps, ensure_ascii=False)

struct JSONWriter {
    var indent: String?
    var sortKeys: Bool = false
    var itemSeparator: String? = nil
    var keySeparator: String = ": "

    init(indent: String?, sortKeys: Bool, separators: (String, String)? = nil) {
        self.indent = indent
        self.sortKeys = sortKeys
        if let separators {
            itemSeparator = separators.0
            keySeparator = separators.1
        }
    }

    /// Returns nil for values JSON cannot hold (the caller reports the error).
    @discardableResult
    func write(_ v: Value, into out: inout String, level: Int) -> Bool {
        let itemSep = itemSeparator ?? (indent == nil ? ", " : ",")
        switch v {
        case .none: out.append("null")
        case .bool(let b): out.append(b ? "true" : "false")
        case .int(let i): out.append(String(i))
        case .float(let d):
            if d.isNaN { out.append("NaN") } else if d.isInfinite { out.append(d < 0 ? "-Infinity" : "Infinity") } else {
                out.append(pyFloatRepr(d))
            }
        case .string(let s): JSONValue.writeString(s, into: &out)
        case .list(let a), .tuple(let a):
            if a.isEmpty { out.append("[]"); return true }
            out.append("[")
            for (i, x) in a.enumerated() {
                if i > 0 { out.append(itemSep) }
                newline(&out, level + 1)
                if !write(x, into: &out, level: level + 1) { return false }
            }
            newline(&out, level)
            out.append("]")
        case .dict(let d):
            if d.count == 0 { out.append("{}"); return true }
            out.append("{")
            var pairs = d.pairs
            if sortKeys { pairs.sort { scalarLess($0.0, $1.0) } }
            for (i, (k, x)) in pairs.enumerated() {
                if i > 0 { out.append(itemSep) }
                newline(&out, level + 1)
                JSONValue.writeString(k, into: &out)
                out.append(keySeparator)
                if !write(x, into: &out, level: level + 1) { return false }
            }
            newline(&out, level)
            out.append("}")
        case .undefined, .namespace, .loop, .callable:
            return false
        }
        return true
    }

    private func newline(_ out: inout String, _ level: Int) {
        guard let indent else { return }
        out.append("\n")
        for _ in 0..<level { out.append(indent) }
    }
}

/// Python string ordering: by code point.
func scalarLess(_ a: String, _ b: String) -> Bool {
    var ia = a.unicodeScalars.makeIterator()
    var ib = b.unicodeScalars.makeIterator()
    while true {
        switch (ia.next(), ib.next()) {
        case (nil, nil): return false
        case (nil, _): return true
        case (_, nil): return false
        case (let x?, let y?):
            if x != y { return x.value < y.value }
        }
    }
}

func scalarEqual(_ a: String, _ b: String) -> Bool {
    a.utf8.elementsEqual(b.utf8)
}

func internalValue(_ j: JinjaValue) -> Value { Value(j) }
