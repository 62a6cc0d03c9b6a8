import EbbCore

extension Renderer {
    func requireString(_ v: Value, _ what: String, _ line: Int) throws -> String {
        switch v {
        case .string(let s): return s
        case .undefined(let m): throw error(line, m)
        default: throw error(line, "\(what) must be a string, not \(v.typeName)")
        }
    }

    func requireInt(_ v: Value?, _ what: String, _ line: Int) throws -> Int? {
        guard let v, !v.isNone else { return nil }
        if let i = indexValue(v) { return i }
        if case .undefined(let m) = v { throw error(line, m) }
        throw error(line, "\(what) must be an integer, not \(v.typeName)")
    }

    func length(_ v: Value, _ line: Int) throws -> Int {
        switch v {
        case .string(let s): return s.unicodeScalars.count
        case .list(let a), .tuple(let a): return a.count
        case .dict(let d): return d.count
        case .undefined: return 0
        default: throw error(line, "object of type '\(v.typeName)' has no len()")
        }
    }

    func toJSON(_ v: Value, indent: Value?, separators: Value?, sortKeys: Bool, _ line: Int) throws -> String {
        var ind: String? = nil
        switch indent {
        case .int(let n)?: ind = String(repeating: " ", count: Swift.max(0, Swift.min(n, 64)))
        case .string(let s)?: ind = s
        case .none?, nil, .undefined?: ind = nil
        default: throw error(line, "tojson: indent must be an integer or a string")
        }
        var seps: (String, String)? = nil
        if let separators, !separators.isNone {
            let items = try iterate(separators, line)
            guard items.count == 2, case .string(let a) = items[0], case .string(let b) = items[1] else {
                throw error(line, "tojson: separators must be a pair of strings")
            }
            seps = (a, b)
        }
        var out = ""
        let ok = JSONWriter(indent: ind, sortKeys: sortKeys, separators: seps).write(v, into: &out, level: 0)
        if !ok {
            if case .undefined(let m) = v { throw error(line, m) }
            throw error(line, "Object of type \(v.typeName) is not JSON serializable")
        }
        try checkSize(out.utf8.count, line)
        return out
    }

    /// `environment.getitem` chain for dotted attribute paths used by filters (`map(attribute='a.b')`).
    func attrPath(_ v: Value, _ path: String, _ line: Int) throws -> Value {
        var cur = v
        for part in path.split(separator: ".", omittingEmptySubsequences: false) {
            let key: Value = Int(part).map { .int($0) } ?? .string(String(part))
            if case .undefined = cur { return cur }
            cur = try getitem(cur, key, line)
        }
        return cur
    }

    func sortKey(_ v: Value, caseSensitive: Bool) -> Value {
        if !caseSensitive, case .string(let s) = v { return .string(pyLower(s)) }
        return v
    }

    func sorted(_ items: [Value], reverse: Bool, _ line: Int, key: (Value) throws -> Value) throws -> [Value] {
        let keyed = try items.map { (try key($0), $0) }
        var failure: EbbError? = nil
        let result = keyed.enumerated().sorted { x, y in
            do {
                if try less(x.element.0, y.element.0, line) { return !reverse }
                if try less(y.element.0, x.element.0, line) { return reverse }
            } catch let e as EbbError {
                failure = failure ?? e
            } catch {}
            return x.offset < y.offset
        }
        if let failure { throw failure }
        return result.map { $0.element.1 }
    }

    // MARK: filters

    func applyFilter(_ name: String, _ v: Value, _ args: Arguments, _ line: Int) throws -> Value {
        let (pos, kw) = try evalArgs(args)
        return try filter(name, v, pos, kw, line)
    }

    func filter(_ name: String, _ v: Value, _ pos: [Value], _ kw: [(String, Value)], _ line: Int) throws -> Value {
        func args(_ names: String...) -> BoundArgs { BoundArgs(pos: pos, kw: kw, names: names) }
        switch name {
        case "length", "count":
            return .int(try length(v, line))
        case "string":
            return .string(v.str)
        case "safe":
            return v
        case "e", "escape":
            return .string(htmlEscape(v.str))
        case "upper":
            return .string(pyUpper(v.str))
        case "lower":
            return .string(pyLower(v.str))
        case "title":
            return .string(jinjaTitle(v.str))
        case "capitalize":
            return .string(pyCapitalize(v.str))
        case "trim":
            let a = args("chars")
            let chars = a.get(0).flatMap { $0.isNone ? nil : $0.str }
            return .string(pyStrip(v.str, chars, left: true, right: true))
        case "tojson":
            let a = args("ensure_ascii", "indent", "separators", "sort_keys")
            return .string(try toJSON(v, indent: a.get(1), separators: a.get(2), sortKeys: a.bool(3, false), line))
        case "int":
            if case .undefined(let m) = v { throw error(line, m) }
            let a = args("default", "base")
            let dflt = a.get(0) ?? .int(0)
            let base = try requireInt(a.get(1), "base", line) ?? 10
            switch v {
            case .int: return v
            case .bool(let b): return .int(b ? 1 : 0)
            case .float(let d):
                guard d.isFinite, Swift.abs(d) < 9.2e18 else { return dflt }
                return .int(Int(d.rounded(.towardZero)))
            case .string(let s):
                if let i = pyParseInt(s, base: base) { return .int(i) }
                if base == 10, let d = pyParseFloat(s), d.isFinite, Swift.abs(d) < 9.2e18 {
                    return .int(Int(d.rounded(.towardZero)))
                }
                return dflt
            default: return dflt
            }
        case "float":
            if case .undefined(let m) = v { throw error(line, m) }
            let dflt = args("default").get(0) ?? .float(0)
            switch v {
            case .float: return v
            case .int(let i): return .float(Double(i))
            case .bool(let b): return .float(b ? 1 : 0)
            case .string(let s): return pyParseFloat(s).map { .float($0) } ?? dflt
            default: return dflt
            }
        case "abs":
            switch v {
            case .int(let i):
                if i == Int.min { throw overflow(line) }
                return .int(Swift.abs(i))
            case .bool(let b): return .int(b ? 1 : 0)
            case .float(let d): return .float(Swift.abs(d))
            case .undefined(let m): throw error(line, m)
            default: throw error(line, "bad operand type for abs(): '\(v.typeName)'")
            }
        case "round":
            let a = args("precision", "method")
            let precision = try requireInt(a.get(0), "precision", line) ?? 0
            let method = a.get(1)?.str ?? "common"
            guard let n = numeric(v) else { throw error(line, "round: a number is required") }
            if case .int = n, method == "common" { return n }
            let d = toDouble(n)
            if !d.isFinite { return .float(d) }
            switch method {
            case "common":
                if precision == 0 { return .float(d.rounded(.toNearestOrEven)) }
                let s = formatFixed(d, Swift.max(0, precision))
                return .float(Double(s) ?? d)
            case "ceil", "floor":
                let p = pyPow(10, Double(precision))
                let r = (d * p).rounded(method == "ceil" ? .up : .down) / p
                return .float(r)
            default:
                throw error(line, "method must be 'common', 'ceil' or 'floor'")
            }
        case "default", "d":
            let a = args("default_value", "boolean")
            let dflt = a.get(0) ?? .string("")
            if v.isUndefined || (a.bool(1, false) && !v.truthy) { return dflt }
            return v
        case "first":
            switch v {
            case .string(let s): return s.unicodeScalars.first.map { .string(String($0)) } ?? .undefined("No first item, sequence was empty.")
            default: return try iterate(v, line).first ?? .undefined("No first item, sequence was empty.")
            }
        case "last":
            if case .undefined(let m) = v { throw error(line, m) }
            return try iterate(v, line).last ?? .undefined("No last item, sequence was empty.")
        case "list":
            return .list(try iterate(v, line))
        case "items":
            switch v {
            case .undefined: return .list([])
            case .dict(let d): return .list(d.pairs.map { .tuple([.string($0.0), $0.1]) })
            default: throw error(line, "Can only get item pairs from a mapping.")
            }
        case "dictsort":
            guard case .dict(let d) = v else { throw error(line, "dictsort: a mapping is required") }
            let a = args("case_sensitive", "by", "reverse")
            let cs = a.bool(0, false)
            let byValue = a.get(1)?.str == "value"
            let items: [Value] = d.pairs.map { .tuple([.string($0.0), $0.1]) }
            return .list(
                try sorted(items, reverse: a.bool(2, false), line) { item in
                    guard case .tuple(let kv) = item else { return item }
                    return sortKey(kv[byValue ? 1 : 0], caseSensitive: cs)
                })
        case "join":
            let a = args("d", "attribute")
            let sep = a.get(0).map { $0.str } ?? ""
            var items = try iterate(v, line)
            if let attr = a.get(1), !attr.isNone { items = try items.map { try attrPath($0, attr.str, line) } }
            let s = items.map(\.str).joined(separator: sep)
            try checkSize(s.utf8.count, line)
            return .string(s)
        case "replace":
            let a = args("old", "new", "count")
            guard let old = a.get(0), let new = a.get(1) else { throw error(line, "replace needs old and new") }
            let count = try requireInt(a.get(2), "count", line) ?? -1
            guard let r = try pyReplace(v.str, old.str, new.str, count, limit: limits.maxOutputBytes) else {
                throw EbbError(.resourceExhausted, "template line \(line): string too large")
            }
            return .string(r)
        case "reverse":
            switch v {
            case .string(let s): return .string(string(s.unicodeScalars.reversed()))
            default: return .list(try iterate(v, line).reversed())
            }
        case "sort":
            let a = args("reverse", "case_sensitive", "attribute")
            let cs = a.bool(1, false)
            let attr = a.get(2).flatMap { $0.isNone ? nil : $0.str }
            return .list(
                try sorted(try iterate(v, line), reverse: a.bool(0, false), line) { item in
                    sortKey(try attr.map { try attrPath(item, $0, line) } ?? item, caseSensitive: cs)
                })
        case "unique":
            let a = args("case_sensitive", "attribute")
            let cs = a.bool(0, false)
            let attr = a.get(1).flatMap { $0.isNone ? nil : $0.str }
            var seen: [Value] = []
            var out: [Value] = []
            for item in try iterate(v, line) {
                let k = sortKey(try attr.map { try attrPath(item, $0, line) } ?? item, caseSensitive: cs)
                if !seen.contains(where: { equal($0, k) }) {
                    seen.append(k)
                    out.append(item)
                }
            }
            return .list(out)
        case "min", "max":
            let a = args("case_sensitive", "attribute")
            let cs = a.bool(0, false)
            let attr = a.get(1).flatMap { $0.isNone ? nil : $0.str }
            let items = try iterate(v, line)
            guard !items.isEmpty else { return .undefined("No aggregated item, sequence was empty.") }
            let s = try sorted(items, reverse: false, line) { item in
                sortKey(try attr.map { try attrPath(item, $0, line) } ?? item, caseSensitive: cs)
            }
            return (name == "min" ? s.first : s.last) ?? .none
        case "sum":
            let a = args("attribute", "start")
            var total = a.get(1) ?? .int(0)
            for item in try iterate(v, line) {
                let x = try a.get(0).flatMap { $0.isNone ? nil : $0 }.map { try attrPath(item, $0.str, line) } ?? item
                total = try binary(.add, total, x, line)
            }
            return total
        case "map":
            let items = try iterate(v, line)
            if let attr = kw.first(where: { $0.0 == "attribute" })?.1 {
                let dflt = kw.first { $0.0 == "default" }?.1
                return .list(
                    try items.map { item in
                        let r = try attrPath(item, attr.str, line)
                        if r.isUndefined, let dflt { return dflt }
                        return r
                    })
            }
            guard let fname = pos.first else { return .list(items) }
            let fn = try requireString(fname, "map filter name", line)
            guard Builtins.filterNames.contains(fn) else { throw error(line, "no filter named \(pyStringRepr(fn))") }
            let rest = Array(pos.dropFirst())
            return .list(try items.map { try filter(fn, $0, rest, kw, line) })
        case "select", "reject", "selectattr", "rejectattr":
            let byAttr = name.hasSuffix("attr")
            let wantTrue = name.hasPrefix("select")
            var rest = pos
            var attr: String? = nil
            if byAttr {
                guard !rest.isEmpty else { throw error(line, "\(name) needs an attribute name") }
                attr = rest.removeFirst().str
            }
            var testName: String? = nil
            if !rest.isEmpty {
                let t = try requireString(rest.removeFirst(), "test name", line)
                guard Builtins.testNames.contains(t) else { throw error(line, "no test named \(pyStringRepr(t))") }
                testName = t
            }
            var out: [Value] = []
            for item in try iterate(v, line) {
                let subject = try attr.map { try attrPath(item, $0, line) } ?? item
                let ok = try testName.map { try applyTest($0, subject, rest, kw, line) } ?? subject.truthy
                if ok == wantTrue { out.append(item) }
            }
            return .list(out)
        case "attr":
            guard let n = pos.first else { throw error(line, "attr needs a name") }
            return try getattr(v, n.str, line)
        case "batch":
            let a = args("linecount", "fill_with")
            guard let n = try requireInt(a.get(0), "linecount", line), n > 0, n <= limits.maxIterations else {
                throw error(line, "batch size must be between 1 and \(limits.maxIterations)")
            }
            let items = try iterate(v, line)
            var out: [Value] = []
            var i = 0
            while i < items.count {
                var chunk = Array(items[i..<Swift.min(i + n, items.count)])
                if chunk.count < n, let fill = a.get(1) {
                    chunk += Array(repeating: fill, count: n - chunk.count)
                }
                out.append(.list(chunk))
                i += n
            }
            return .list(out)
        case "indent":
            let a = args("width", "first", "blank")
            let indention: String
            switch a.get(0) {
            case .string(let s)?: indention = s
            case let w?: indention = String(repeating: " ", count: Swift.max(0, Swift.min(try requireInt(w, "width", line) ?? 4, 1000)))
            case nil: indention = "    "
            }
            let s = v.str + "\n"
            var lines = pySplitLines(s)
            var rv: String
            if a.bool(2, false) {
                rv = lines.joined(separator: "\n" + indention)
            } else {
                rv = lines.isEmpty ? "" : lines.removeFirst()
                if !lines.isEmpty {
                    rv += "\n" + lines.map { $0.isEmpty ? $0 : indention + $0 }.joined(separator: "\n")
                }
            }
            if a.bool(1, false) { rv = indention + rv }
            try checkSize(rv.utf8.count, line)
            return .string(rv)
        case "center":
            let width = try requireInt(args("width").get(0), "width", line) ?? 80
            return .string(try pad(v.str, width, " ", align: "center", line))
        case "wordcount":
            var count = 0
            var inWord = false
            for u in v.str.unicodeScalars {
                let w = u.properties.isAlphabetic || u.properties.numericType != nil || u == "_"
                if w && !inWord { count += 1 }
                inWord = w
            }
            return .int(count)
        case "format":
            return .string(try percentFormat(v.str, pos, line))
        default:
            throw error(line, "unknown filter '\(name)'")
        }
    }

    func pad(_ s: String, _ width: Int, _ fill: String, align: String, _ line: Int) throws -> String {
        let n = s.unicodeScalars.count
        guard width > n else { return s }
        try checkSize(width, line)
        let total = width - n
        switch align {
        case "left": return s + String(repeating: fill, count: total)
        case "right": return String(repeating: fill, count: total) + s
        default:
            // Python's centering puts the extra space on the right unless both are odd.
            let left = total / 2 + (total & width & 1)
            return String(repeating: fill, count: left) + s + String(repeating: fill, count: total - left)
        }
    }

    // MARK: tests

    func applyTest(_ name: String, _ v: Value, _ pos: [Value], _ kw: [(String, Value)], _ line: Int) throws -> Bool {
        let arg = pos.first ?? kw.first?.1
        func needArg() throws -> Value {
            guard let arg else { throw error(line, "test '\(name)' needs an argument") }
            return arg
        }
        switch name {
        case "defined": return !v.isUndefined
        case "undefined": return v.isUndefined
        case "none": return v.isNone
        case "boolean": if case .bool = v { return true } else { return false }
        case "true": if case .bool(true) = v { return true } else { return false }
        case "false": if case .bool(false) = v { return true } else { return false }
        case "integer": if case .int = v { return true } else { return false }
        case "float": if case .float = v { return true } else { return false }
        case "number": return numeric(v) != nil
        case "string": if case .string = v { return true } else { return false }
        case "mapping": if case .dict = v { return true } else { return false }
        case "iterable":
            switch v {
            case .list, .tuple, .dict, .string, .undefined: return true
            default: return false
            }
        case "sequence":
            switch v {
            case .list, .tuple, .dict, .string, .undefined: return true
            default: return false
            }
        case "callable": if case .callable = v { return true } else { return false }
        case "escaped": return false
        case "sameas":
            let other = try needArg()
            switch (v, other) {
            case (.none, .none): return true
            case (.bool(let a), .bool(let b)): return a == b
            case (.int(let a), .int(let b)): return a == b && a >= -5 && a <= 256
            case (.namespace(let a), .namespace(let b)): return a == b
            default: return false
            }
        case "eq", "equalto", "==": return equal(v, try needArg())
        case "ne", "!=": return !equal(v, try needArg())
        case "lt", "lessthan", "<": return try less(v, try needArg(), line)
        case "le", "<=": return try !less(try needArg(), v, line)
        case "gt", "greaterthan", ">": return try less(try needArg(), v, line)
        case "ge", ">=": return try !less(v, try needArg(), line)
        case "in": return try contains(try needArg(), v, line)
        case "odd", "even", "divisibleby":
            if case .undefined(let m) = v { throw error(line, m) }
            guard let n = numeric(v) else { throw error(line, "test '\(name)' needs a number") }
            let d = name == "divisibleby" ? try needArg() : .int(2)
            let r = try arithmetic(.mod, n, numeric(d) ?? .int(2), line)
            let isZero = toDouble(r) == 0
            return name == "odd" ? !isZero : isZero
        case "lower":
            let s = v.str
            return s.unicodeScalars.contains(where: isCased) && s == pyLower(s)
        case "upper":
            let s = v.str
            return s.unicodeScalars.contains(where: isCased) && s == pyUpper(s)
        case "filter":
            if case .string(let s) = v { return Builtins.filterNames.contains(s) }
            return false
        case "test":
            if case .string(let s) = v { return Builtins.testNames.contains(s) }
            return false
        default:
            throw error(line, "unknown test '\(name)'")
        }
    }
}
