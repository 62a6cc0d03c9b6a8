import EbbCore

extension Renderer {
    func numeric(_ v: Value) -> Value? {
        switch v {
        case .int, .float: return v
        case .bool(let b): return .int(b ? 1 : 0)
        default: return nil
        }
    }

    func overflow(_ line: Int) -> EbbError {
        error(line, "integer overflow (integers beyond 64 bits are not supported)")
    }

    func binary(_ op: BinaryOp, _ a: Value, _ b: Value, _ line: Int) throws -> Value {
        if op == .concat {
            let s = a.str + b.str
            try checkSize(s.utf8.count, line)
            return .string(s)
        }
        if case .undefined(let m) = a { throw error(line, m) }
        if case .undefined(let m) = b { throw error(line, m) }
        func unsupported() -> EbbError {
            error(line, "unsupported operand type(s) for \(op.rawValue): '\(a.typeName)' and '\(b.typeName)'")
        }
        if let x = numeric(a), let y = numeric(b) {
            return try arithmetic(op, x, y, line)
        }
        switch (op, a, b) {
        case (.add, .string(let x), .string(let y)):
            try checkSize(x.utf8.count + y.utf8.count, line)
            return .string(x + y)
        case (.add, .list(let x), .list(let y)):
            return .list(x + y)
        case (.add, .tuple(let x), .tuple(let y)):
            return .tuple(x + y)
        case (.mul, .string(let s), _):
            guard let n = indexValue(b) else { throw unsupported() }
            return try repeatString(s, n, line)
        case (.mul, _, .string(let s)):
            guard let n = indexValue(a) else { throw unsupported() }
            return try repeatString(s, n, line)
        case (.mul, .list(let x), _), (.mul, .tuple(let x), _), (.mul, _, .list(let x)), (.mul, _, .tuple(let x)):
            let isSeqA: Bool = { switch a { case .list, .tuple: return true; default: return false } }()
            guard let n = indexValue(isSeqA ? b : a) else { throw unsupported() }
            if n <= 0 || x.isEmpty { return isTuple(isSeqA ? a : b) ? .tuple([]) : .list([]) }
            let (size, o) = x.count.multipliedReportingOverflow(by: n)
            if o || size > limits.maxIterations { throw error(line, "sequence repetition too large") }
            var r: [Value] = []
            r.reserveCapacity(size)
            for _ in 0..<n { r.append(contentsOf: x) }
            return isTuple(isSeqA ? a : b) ? .tuple(r) : .list(r)
        case (.mod, .string(let fmt), _):
            let args: [Value]
            if case .tuple(let t) = b { args = t } else { args = [b] }
            return .string(try percentFormat(fmt, args, line))
        default:
            throw unsupported()
        }
    }

    private func repeatString(_ s: String, _ n: Int, _ line: Int) throws -> Value {
        if n <= 0 { return .string("") }
        let (size, o) = s.utf8.count.multipliedReportingOverflow(by: n)
        if o { throw overflow(line) }
        try checkSize(size, line)
        return .string(String(repeating: s, count: n))
    }

    private func isTuple(_ v: Value) -> Bool { if case .tuple = v { return true } else { return false } }

    func arithmetic(_ op: BinaryOp, _ a: Value, _ b: Value, _ line: Int) throws -> Value {
        if case .int(let x) = a, case .int(let y) = b {
            switch op {
            case .add:
                let (r, o) = x.addingReportingOverflow(y)
                if o { throw overflow(line) }
                return .int(r)
            case .sub:
                let (r, o) = x.subtractingReportingOverflow(y)
                if o { throw overflow(line) }
                return .int(r)
            case .mul:
                let (r, o) = x.multipliedReportingOverflow(by: y)
                if o { throw overflow(line) }
                return .int(r)
            case .div:
                if y == 0 { throw error(line, "division by zero") }
                return .float(Double(x) / Double(y))
            case .floordiv:
                if y == 0 { throw error(line, "integer division or modulo by zero") }
                if x == Int.min && y == -1 { throw overflow(line) }
                var q = x / y
                if (x % y != 0) && ((x < 0) != (y < 0)) { q -= 1 }
                return .int(q)
            case .mod:
                if y == 0 { throw error(line, "integer division or modulo by zero") }
                if y == -1 { return .int(0) }
                var r = x % y
                if r != 0 && ((r < 0) != (y < 0)) { r += y }
                return .int(r)
            case .pow:
                if y < 0 {
                    if x == 0 { throw error(line, "0.0 cannot be raised to a negative power") }
                    return .float(pyPow(Double(x), Double(y)))
                }
                var result = 1
                var base = x
                var e = y
                while e > 0 {
                    if e & 1 == 1 {
                        let (r, o) = result.multipliedReportingOverflow(by: base)
                        if o { throw overflow(line) }
                        result = r
                    }
                    e >>= 1
                    if e > 0 {
                        let (sq, o) = base.multipliedReportingOverflow(by: base)
                        if o { throw overflow(line) }
                        base = sq
                    }
                }
                return .int(result)
            case .concat:
                return .string(a.str + b.str)
            }
        }
        let x = toDouble(a)
        let y = toDouble(b)
        switch op {
        case .add: return .float(x + y)
        case .sub: return .float(x - y)
        case .mul: return .float(x * y)
        case .div:
            if y == 0 { throw error(line, "float division by zero") }
            return .float(x / y)
        case .floordiv:
            if y == 0 { throw error(line, "float floor division by zero") }
            return .float(pyFloatMod(x, y).div)
        case .mod:
            if y == 0 { throw error(line, "float modulo") }
            return .float(pyFloatMod(x, y).mod)
        case .pow:
            if x == 0 && y < 0 { throw error(line, "0.0 cannot be raised to a negative power") }
            return .float(pyPow(x, y))
        case .concat:
            return .string(a.str + b.str)
        }
    }

    func toDouble(_ v: Value) -> Double {
        switch v {
        case .int(let i): return Double(i)
        case .float(let d): return d
        case .bool(let b): return b ? 1 : 0
        default: return .nan
        }
    }

    // MARK: comparison

    func equal(_ a: Value, _ b: Value) -> Bool {
        if let x = numeric(a), let y = numeric(b) {
            if case .int(let i) = x, case .int(let j) = y { return i == j }
            return toDouble(x) == toDouble(y)
        }
        switch (a, b) {
        case (.undefined, .undefined), (.none, .none): return true
        case (.string(let x), .string(let y)): return scalarEqual(x, y)
        case (.list(let x), .list(let y)), (.tuple(let x), .tuple(let y)):
            return x.count == y.count && zip(x, y).allSatisfy { equal($0, $1) }
        case (.dict(let x), .dict(let y)):
            guard x.count == y.count else { return false }
            for (k, v) in x.pairs {
                guard let w = y[k], equal(v, w) else { return false }
            }
            return true
        case (.namespace(let x), .namespace(let y)): return x == y
        default: return false
        }
    }

    /// Python `<`; nil result means the types are not orderable.
    func less(_ a: Value, _ b: Value, _ line: Int) throws -> Bool {
        if case .undefined(let m) = a { throw error(line, m) }
        if case .undefined(let m) = b { throw error(line, m) }
        if let x = numeric(a), let y = numeric(b) {
            if case .int(let i) = x, case .int(let j) = y { return i < j }
            return toDouble(x) < toDouble(y)
        }
        switch (a, b) {
        case (.string(let x), .string(let y)): return scalarLess(x, y)
        case (.list(let x), .list(let y)), (.tuple(let x), .tuple(let y)):
            for (p, q) in zip(x, y) where !equal(p, q) { return try less(p, q, line) }
            return x.count < y.count
        default:
            throw error(line, "'<' not supported between instances of '\(a.typeName)' and '\(b.typeName)'")
        }
    }

    func contains(_ container: Value, _ item: Value, _ line: Int) throws -> Bool {
        switch container {
        case .string(let s):
            guard case .string(let sub) = item else {
                if case .undefined(let m) = item { throw error(line, m) }
                throw error(line, "'in <string>' requires string as left operand, not \(item.typeName)")
            }
            return findSub(Array(s.utf8), Array(sub.utf8), from: 0) != nil
        case .list(let a), .tuple(let a):
            return a.contains { equal($0, item) }
        case .dict(let d):
            if case .string(let k) = item { return d[k] != nil }
            return false
        case .undefined:
            return false
        default:
            throw error(line, "argument of type '\(container.typeName)' is not iterable")
        }
    }

    func compare(_ op: CompareOp, _ a: Value, _ b: Value, _ line: Int) throws -> Bool {
        switch op {
        case .eq: return equal(a, b)
        case .ne: return !equal(a, b)
        case .lt: return try less(a, b, line)
        case .gt: return try less(b, a, line)
        case .le: return try !less(b, a, line)
        case .ge: return try !less(a, b, line)
        case .in: return try contains(b, a, line)
        case .notIn: return try !contains(b, a, line)
        }
    }

    // MARK: printf-style formatting (`"%s" % x`, `|format`)

    func percentFormat(_ fmt: String, _ args: [Value], _ line: Int) throws -> String {
        var out = ""
        var it = Array(fmt.unicodeScalars)[...]
        var argIndex = 0
        func nextArg() throws -> Value {
            guard argIndex < args.count else { throw error(line, "not enough arguments for format string") }
            defer { argIndex += 1 }
            return args[argIndex]
        }
        while let c = it.popFirst() {
            guard c == "%" else { out.unicodeScalars.append(c); continue }
            var spec = ""
            while let f = it.first, "-+ 0#.0123456789".unicodeScalars.contains(f) {
                spec.unicodeScalars.append(f)
                it.removeFirst()
            }
            guard let conv = it.popFirst() else { throw error(line, "incomplete format") }
            if conv == "%" { out += "%"; continue }
            let arg = try nextArg()
            var precision: Int? = nil
            if let dot = spec.firstIndex(of: ".") { precision = Int(spec[spec.index(after: dot)...]) }
            switch conv {
            case "s": out += arg.str
            case "r": out += arg.repr
            case "d", "i":
                guard let n = numeric(arg) else { throw error(line, "%d format: a number is required, not \(arg.typeName)") }
                if case .int(let i) = n { out += String(i) } else { out += String(Int(toDouble(n).rounded(.towardZero))) }
            case "f", "F":
                guard let n = numeric(arg) else { throw error(line, "must be real number, not \(arg.typeName)") }
                out += formatFixed(toDouble(n), precision ?? 6)
            default:
                throw error(line, "unsupported format character '\(conv)'")
            }
        }
        if argIndex < args.count {
            throw error(line, "not all arguments converted during string formatting")
        }
        return out
    }
}

/// Python float `%`/`//` semantics.
func pyFloatMod(_ x: Double, _ y: Double) -> (div: Double, mod: Double) {
    var mod = x.truncatingRemainder(dividingBy: y)
    var div = (x - mod) / y
    if mod != 0 {
        if (y < 0) != (mod < 0) {
            mod += y
            div -= 1
        }
    } else {
        mod = y < 0 ? -0.0 : 0.0
    }
    var floordiv: Double
    if div != 0 {
        floordiv = div.rounded(.down)
        if div - floordiv > 0.5 { floordiv += 1 }
    } else {
        floordiv = x / y < 0 ? -0.0 : 0.0
    }
    return (floordiv, mod)
}

func pyPow(_ x: Double, _ y: Double) -> Double {
    // Foundation-free pow via exp/log is inexact; use the C library through the standard library.
    var result = 1.0
    if y == y.rounded(), Swift.abs(y) < 64 {
        var e = Int(Swift.abs(y))
        var b = x
        while e > 0 {
            if e & 1 == 1 { result *= b }
            b *= b
            e >>= 1
        }
        return y < 0 ? 1 / result : result
    }
    return cPow(x, y)
}

/// Fixed-point formatting with correct rounding (like C's `%.Nf`).
func formatFixed(_ d: Double, _ precision: Int) -> String {
    if d.isNaN { return "nan" }
    if d.isInfinite { return d < 0 ? "-inf" : "inf" }
    return cFormat(d, precision: Swift.max(0, Swift.min(precision, 50)))
}

/// Byte-level substring search (valid UTF-8 makes this code-point exact).
func findSub(_ hay: [UInt8], _ needle: [UInt8], from: Int) -> Int? {
    if needle.isEmpty { return from <= hay.count ? from : nil }
    if needle.count > hay.count { return nil }
    let first = needle[0]
    var i = from
    let last = hay.count - needle.count
    while i <= last {
        if hay[i] == first {
            var k = 1
            while k < needle.count, hay[i + k] == needle[k] { k += 1 }
            if k == needle.count { return i }
        }
        i += 1
    }
    return nil
}
