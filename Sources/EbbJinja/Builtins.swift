import EbbCore

enum Builtins {
    static let filterNames: Set<String> = [
        "abs", "attr", "batch", "capitalize", "center", "count", "d", "default", "dictsort", "e", "escape",
        "first", "float", "format", "indent", "int", "items", "join", "last", "length", "list", "lower", "map",
        "max", "min", "reject", "rejectattr", "replace", "reverse", "round", "safe", "select", "selectattr",
        "sort", "string", "sum", "title", "tojson", "trim", "unique", "upper", "wordcount",
    ]

    static let testNames: Set<String> = [
        "defined", "undefined", "none", "boolean", "false", "true", "integer", "float", "number", "string",
        "mapping", "iterable", "sequence", "callable", "sameas", "escaped", "eq", "equalto", "==", "ne", "!=",
        "lt", "lessthan", "<", "le", "<=", "gt", "greaterthan", ">", "ge", ">=", "in", "odd", "even",
        "divisibleby", "lower", "upper", "filter", "test",
    ]

    static let globalNames: Set<String> = ["range", "namespace", "dict", "raise_exception", "strftime_now"]

    static let dictMethods: Set<String> = ["items", "keys", "values", "get", "copy"]
    static let unsafeDictMethods: Set<String> = ["pop", "popitem", "setdefault", "update", "clear"]
    static let listMethods: Set<String> = ["count", "index", "copy"]
    static let unsafeListMethods: Set<String> = [
        "append", "extend", "insert", "pop", "remove", "reverse", "sort", "clear",
    ]
    static let stringMethods: Set<String> = [
        "startswith", "endswith", "strip", "lstrip", "rstrip", "split", "rsplit", "splitlines", "replace",
        "upper", "lower", "title", "capitalize", "swapcase", "find", "rfind", "index", "rindex", "count", "join",
        "format", "isdigit", "isalpha", "isalnum", "isspace", "isupper", "islower", "isnumeric", "isdecimal",
        "removeprefix", "removesuffix", "zfill", "ljust", "rjust", "center", "partition", "rpartition",
    ]
}

/// Positional-or-keyword argument access for builtins.
struct BoundArgs {
    let pos: [Value]
    let kw: [(String, Value)]
    let names: [String]

    func get(_ i: Int) -> Value? {
        if i < pos.count { return pos[i] }
        guard i < names.count else { return nil }
        return kw.first { $0.0 == names[i] }?.1
    }

    func bool(_ i: Int, _ dflt: Bool) -> Bool { get(i)?.truthy ?? dflt }
}

// MARK: - String helpers (Python str semantics, code-point based)

func scalars(_ s: String) -> [Unicode.Scalar] { Array(s.unicodeScalars) }
func string(_ sc: some Sequence<Unicode.Scalar>) -> String {
    var v = String.UnicodeScalarView()
    v.append(contentsOf: sc)
    return String(v)
}

func pyStrip(_ s: String, _ chars: String?, left: Bool, right: Bool) -> String {
    let sc = scalars(s)
    let set: Set<Unicode.Scalar>? = chars.map { Set($0.unicodeScalars) }
    func strip(_ u: Unicode.Scalar) -> Bool { set.map { $0.contains(u) } ?? pyIsSpace(u) }
    var a = 0
    var b = sc.count
    if left { while a < b, strip(sc[a]) { a += 1 } }
    if right { while b > a, strip(sc[b - 1]) { b -= 1 } }
    return string(sc[a..<b])
}

func pySplitWhitespace(_ s: String, _ maxsplit: Int, fromRight: Bool) -> [String] {
    var sc = scalars(s)
    if fromRight { sc.reverse() }
    var parts: [String] = []
    var i = 0
    var splits = 0
    while true {
        while i < sc.count, pyIsSpace(sc[i]) { i += 1 }
        if i >= sc.count { break }
        if maxsplit >= 0 && splits >= maxsplit {
            let end = sc.count
            parts.append(fromRight ? string(sc[i..<end].reversed()) : string(sc[i..<end]))
            break
        }
        let start = i
        while i < sc.count, !pyIsSpace(sc[i]) { i += 1 }
        parts.append(fromRight ? string(sc[start..<i].reversed()) : string(sc[start..<i]))
        splits += 1
    }
    return fromRight ? parts.reversed() : parts
}

func pySplit(_ s: String, _ sep: String, _ maxsplit: Int) -> [String] {
    let hay = Array(s.utf8)
    let needle = Array(sep.utf8)
    var parts: [String] = []
    var start = 0
    var splits = 0
    while maxsplit < 0 || splits < maxsplit, let i = findSub(hay, needle, from: start) {
        parts.append(String(decoding: hay[start..<i], as: UTF8.self))
        start = i + needle.count
        splits += 1
    }
    parts.append(String(decoding: hay[start...], as: UTF8.self))
    return parts
}

func pyRSplit(_ s: String, _ sep: String, _ maxsplit: Int) -> [String] {
    let hay = Array(s.utf8)
    let needle = Array(sep.utf8)
    var positions: [Int] = []
    var from = 0
    while let i = findSub(hay, needle, from: from) {
        positions.append(i)
        from = i + needle.count
    }
    if maxsplit >= 0 && positions.count > maxsplit { positions = Array(positions.suffix(maxsplit)) }
    var parts: [String] = []
    var start = 0
    for p in positions {
        parts.append(String(decoding: hay[start..<p], as: UTF8.self))
        start = p + needle.count
    }
    parts.append(String(decoding: hay[start...], as: UTF8.self))
    return parts
}

func pyReplace(_ s: String, _ old: String, _ new: String, _ count: Int, limit: Int) throws -> String? {
    if old.isEmpty {
        let sc = scalars(s)
        var out = String.UnicodeScalarView()
        var n = 0
        let newSc = scalars(new)
        if (sc.count + 1) * newSc.count + sc.count > limit { return nil }
        for u in sc {
            if count < 0 || n < count { out.append(contentsOf: newSc); n += 1 }
            out.append(u)
        }
        if count < 0 || n < count { out.append(contentsOf: newSc) }
        return String(out)
    }
    let hay = Array(s.utf8)
    let needle = Array(old.utf8)
    let rep = Array(new.utf8)
    var positions: [Int] = []
    var from = 0
    while count < 0 || positions.count < count, let i = findSub(hay, needle, from: from) {
        positions.append(i)
        from = i + needle.count
    }
    if hay.count + positions.count * Swift.max(0, rep.count - needle.count) > limit { return nil }
    var out: [UInt8] = []
    out.reserveCapacity(hay.count)
    var start = 0
    for p in positions {
        out.append(contentsOf: hay[start..<p])
        out.append(contentsOf: rep)
        start = p + needle.count
    }
    out.append(contentsOf: hay[start...])
    return String(decoding: out, as: UTF8.self)
}

func isCased(_ u: Unicode.Scalar) -> Bool {
    let p = u.properties
    return p.isLowercase || p.isUppercase || p.generalCategory == .titlecaseLetter
}

func pyUpper(_ s: String) -> String { s.uppercased() }
func pyLower(_ s: String) -> String { s.lowercased() }

/// Python `str.title()`.
func pyTitle(_ s: String) -> String {
    var out = ""
    var prevCased = false
    for u in s.unicodeScalars {
        if isCased(u) {
            out += prevCased ? u.properties.lowercaseMapping : u.properties.titlecaseMapping
            prevCased = true
        } else {
            out.unicodeScalars.append(u)
            prevCased = false
        }
    }
    return out
}

/// Python `str.capitalize()`.
func pyCapitalize(_ s: String) -> String {
    var it = s.unicodeScalars.makeIterator()
    guard let first = it.next() else { return "" }
    var rest = String.UnicodeScalarView()
    while let u = it.next() { rest.append(u) }
    return first.properties.titlecaseMapping + String(rest).lowercased()
}

/// Jinja's `title` filter: capitalizes after whitespace and `-([{<`.
func jinjaTitle(_ s: String) -> String {
    var out = ""
    var atWordStart = true
    for u in s.unicodeScalars {
        let isSep = pyIsSpace(u) || "-([{<".unicodeScalars.contains(u)
        if isSep {
            out.unicodeScalars.append(u)
            atWordStart = true
        } else if atWordStart {
            out += u.properties.uppercaseMapping
            atWordStart = false
        } else {
            out += u.properties.lowercaseMapping
        }
    }
    return out
}

/// Python `str.splitlines()`.
func pySplitLines(_ s: String, keepends: Bool = false) -> [String] {
    let sc = scalars(s)
    var lines: [String] = []
    var start = 0
    var i = 0
    while i < sc.count {
        let u = sc[i]
        var brk = 0
        switch u.value {
        case 0x0D: brk = (i + 1 < sc.count && sc[i + 1] == "\n") ? 2 : 1
        case 0x0A, 0x0B, 0x0C, 0x1C, 0x1D, 0x1E, 0x85, 0x2028, 0x2029: brk = 1
        default: break
        }
        if brk > 0 {
            lines.append(string(sc[start..<(keepends ? i + brk : i)]))
            i += brk
            start = i
        } else {
            i += 1
        }
    }
    if start < sc.count { lines.append(string(sc[start...])) }
    return lines
}

func htmlEscape(_ s: String) -> String {
    var out = ""
    for u in s.unicodeScalars {
        switch u {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&#34;"
        case "'": out += "&#39;"
        default: out.unicodeScalars.append(u)
        }
    }
    return out
}

/// Python `int(str)` parsing (whitespace, sign, underscores between digits).
func pyParseInt(_ s: String, base: Int = 10) -> Int? {
    let t = pyStrip(s, nil, left: true, right: true)
    var body = Substring(t)
    var neg = false
    if body.hasPrefix("-") { neg = true; body = body.dropFirst() } else if body.hasPrefix("+") { body = body.dropFirst() }
    if body.isEmpty || body.hasPrefix("_") || body.hasSuffix("_") || body.contains("__") { return nil }
    guard let v = Int(body.filter { $0 != "_" }, radix: base) else { return nil }
    return neg ? -v : v
}

/// Python `float(str)` parsing.
func pyParseFloat(_ s: String) -> Double? {
    let t = pyStrip(s, nil, left: true, right: true).lowercased()
    switch t {
    case "inf", "+inf", "infinity", "+infinity": return .infinity
    case "-inf", "-infinity": return -.infinity
    case "nan", "+nan", "-nan": return .nan
    default: break
    }
    if t.isEmpty || t.contains("__") || t.hasPrefix("_") || t.hasSuffix("_") { return nil }
    let cleaned = t.filter { $0 != "_" }
    guard cleaned.allSatisfy({ "0123456789.eE+-".contains($0) }) else { return nil }
    return Double(cleaned)
}
