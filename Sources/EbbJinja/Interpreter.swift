import EbbCore

enum Flow { case normal, breakLoop, continueLoop }

struct MacroEntry {
    let def: MacroDef
    /// Non-root scopes visible where the macro was defined (or where the call block was).
    let captured: [[String: Value]]
}

/// Executes a parsed template. One instance per render; not shared between threads.
final class Renderer {
    let limits: JinjaTemplate.Limits
    var scopes: [[String: Value]]
    var namespaces: [VDict] = []
    var macros: [MacroEntry] = []
    var out = ""
    var totalWritten = 0
    var iterations = 0
    var callDepth = 0

    init(context: [String: Value], limits: JinjaTemplate.Limits) {
        self.scopes = [context]
        self.limits = limits
    }

    // MARK: errors and budgets

    func error(_ line: Int, _ msg: String) -> EbbError { templateError(line, msg) }

    func checkSize(_ n: Int, _ line: Int) throws {
        if n > limits.maxOutputBytes {
            throw EbbError(.resourceExhausted, "template line \(line): string too large (limit \(limits.maxOutputBytes) bytes)")
        }
    }

    func tick(_ line: Int) throws {
        iterations += 1
        if iterations > limits.maxIterations {
            throw EbbError(.resourceExhausted, "template line \(line): too many loop iterations (limit \(limits.maxIterations))")
        }
    }

    func write(_ s: String, _ line: Int) throws {
        totalWritten += s.utf8.count
        if totalWritten > limits.maxOutputBytes {
            throw EbbError(.resourceExhausted, "template line \(line): output too large (limit \(limits.maxOutputBytes) bytes)")
        }
        out += s
    }

    // MARK: scopes

    func lookup(_ name: String) -> Value? {
        var k = scopes.count - 1
        while k >= 0 {
            if let v = scopes[k][name] { return v }
            k -= 1
        }
        if Builtins.globalNames.contains(name) { return .callable(.global(name)) }
        return nil
    }

    func assign(_ t: Target, _ v: Value, _ line: Int) throws {
        if valueDepth(v, limit: Renderer.maxValueDepth) > Renderer.maxValueDepth {
            throw error(line, "value nested too deeply (limit \(Renderer.maxValueDepth) levels)")
        }
        switch t {
        case .name(let n):
            scopes[scopes.count - 1][n] = v
        case .tuple(let ts):
            let items = try unpack(v, count: ts.count, line)
            for (sub, x) in zip(ts, items) { try assign(sub, x, line) }
        case .attribute(let ns, let attr):
            guard case .namespace(let id)? = lookup(ns), id < namespaces.count else {
                throw error(line, "cannot assign attribute on non-namespace object")
            }
            namespaces[id][attr] = v
        }
    }

    static let maxValueDepth = 200

    /// Nesting depth of containers in `v`, stopping early once it exceeds `limit`.
    func valueDepth(_ v: Value, limit: Int) -> Int {
        if limit < 0 { return 1 }
        switch v {
        case .list(let a), .tuple(let a):
            var m = 0
            for x in a {
                m = Swift.max(m, valueDepth(x, limit: limit - 1))
                if m > limit { break }
            }
            return m + 1
        case .dict(let d):
            var m = 0
            for x in d.map.values {
                m = Swift.max(m, valueDepth(x, limit: limit - 1))
                if m > limit { break }
            }
            return m + 1
        default:
            return 0
        }
    }

    func unpack(_ v: Value, count: Int, _ line: Int) throws -> [Value] {
        let items = try iterate(v, line)
        if items.count < count {
            throw error(line, "not enough values to unpack (expected \(count), got \(items.count))")
        }
        if items.count > count { throw error(line, "too many values to unpack (expected \(count))") }
        return items
    }

    // MARK: statements

    func render(_ body: [Stmt]) throws -> String {
        _ = try execBlock(body)
        return out
    }

    func execBlock(_ stmts: [Stmt]) throws -> Flow {
        for s in stmts {
            let f = try exec(s)
            if f != .normal { return f }
        }
        return .normal
    }

    func capture(_ body: [Stmt]) throws -> String {
        let saved = out
        out = ""
        defer { out = saved }
        _ = try execBlock(body)
        return out
    }

    func exec(_ s: Stmt) throws -> Flow {
        switch s.kind {
        case .data(let text):
            try write(text, s.line)
        case .output(let e):
            try write(try eval(e).str, s.line)
        case .ifStmt(let branches, let orElse):
            for (test, body) in branches where try eval(test).truthy {
                return try execBlock(body)
            }
            if let orElse { return try execBlock(orElse) }
        case .forStmt(let target, let iterExpr, let filter, let body, let orElse):
            return try execFor(target, iterExpr, filter, body, orElse, s.line)
        case .set(let target, let e):
            try assign(target, try eval(e), s.line)
        case .setBlock(let target, let filters, let body):
            var v = Value.string(try capture(body))
            for f in filters { v = try applyFilter(f.name, v, f.args, f.line) }
            try assign(target, v, s.line)
        case .macro(let def):
            macros.append(MacroEntry(def: def, captured: Array(scopes.dropFirst())))
            scopes[scopes.count - 1][def.name] = .callable(.macro(macros.count - 1))
        case .callBlock(let callExpr, let params, let body):
            guard case .call(let fnExpr, let args) = callExpr.kind else { return .normal }
            macros.append(
                MacroEntry(def: MacroDef(name: "caller", params: params, body: body), captured: Array(scopes.dropFirst())))
            let caller = Value.callable(.macro(macros.count - 1))
            let fn = try eval(fnExpr)
            let (pos, kw) = try evalArgs(args)
            let result: Value
            if case .callable(.macro(let id)) = fn {
                result = try callMacro(id, pos, kw, caller: caller, s.line)
            } else {
                result = try call(fn, pos, kw, s.line)
            }
            try write(result.str, s.line)
        case .filterBlock(let filters, let body):
            var v = Value.string(try capture(body))
            for f in filters { v = try applyFilter(f.name, v, f.args, f.line) }
            try write(v.str, s.line)
        case .with(let assigns, let body):
            scopes.append([:])
            defer { scopes.removeLast() }
            for (t, e) in assigns { try assign(t, try eval(e), s.line) }
            return try execBlock(body)
        case .generation(let body):
            return try execBlock(body)
        case .breakLoop:
            return .breakLoop
        case .continueLoop:
            return .continueLoop
        }
        return .normal
    }

    private func execFor(
        _ target: Target, _ iterExpr: Expr, _ filter: Expr?, _ body: [Stmt], _ orElse: [Stmt]?, _ line: Int
    ) throws -> Flow {
        var items = try iterate(try eval(iterExpr), line)
        if let filter {
            var kept: [Value] = []
            scopes.append([:])
            defer { scopes.removeLast() }
            for item in items {
                try tick(line)
                try assign(target, item, line)
                if try eval(filter).truthy { kept.append(item) }
            }
            items = kept
        }
        if items.isEmpty {
            if let orElse {
                scopes.append([:])
                defer { scopes.removeLast() }
                return try execBlock(orElse)
            }
            return .normal
        }
        let n = items.count
        for (idx, item) in items.enumerated() {
            try tick(line)
            scopes.append([:])
            defer { scopes.removeLast() }
            scopes[scopes.count - 1]["loop"] = .loop(
                LoopState(
                    index0: idx, length: n, previtem: idx > 0 ? items[idx - 1] : nil,
                    nextitem: idx + 1 < n ? items[idx + 1] : nil, depth0: 0))
            try assign(target, item, line)
            if try execBlock(body) == .breakLoop { break }
        }
        return .normal
    }

    // MARK: expressions

    func evalArgs(_ a: Arguments) throws -> ([Value], [(String, Value)]) {
        (try a.positional.map(eval), try a.keyword.map { ($0.0, try eval($0.1)) })
    }

    func eval(_ e: Expr) throws -> Value {
        switch e.kind {
        case .literal(let v):
            return v
        case .name(let n):
            return lookup(n) ?? .undefined("'\(n)' is undefined")
        case .list(let xs):
            return .list(try xs.map(eval))
        case .tuple(let xs):
            return .tuple(try xs.map(eval))
        case .dict(let kvs):
            var d = VDict()
            for (ke, ve) in kvs {
                guard case .string(let k) = try eval(ke) else {
                    throw error(e.line, "only string keys are supported in dict literals")
                }
                d[k] = try eval(ve)
            }
            return .dict(d)
        case .getattr(let obj, let name):
            return try getattr(try eval(obj), name, e.line)
        case .getitem(let obj, let key):
            return try getitem(try eval(obj), try eval(key), e.line)
        case .slice(let obj, let lo, let hi, let step):
            return try slice(
                try eval(obj), try lo.map(eval), try hi.map(eval), try step.map(eval), e.line)
        case .call(let fnExpr, let args):
            let fn = try eval(fnExpr)
            let (pos, kw) = try evalArgs(args)
            return try call(fn, pos, kw, e.line)
        case .filter(let subject, let name, let args):
            return try applyFilter(name, try eval(subject), args, e.line)
        case .test(let subject, let name, let args):
            let (pos, kw) = try evalArgs(args)
            return .bool(try applyTest(name, try eval(subject), pos, kw, e.line))
        case .neg(let x):
            let v = try eval(x)
            switch v {
            case .int(let i):
                let (r, o) = Int(0).subtractingReportingOverflow(i)
                if o { throw error(e.line, "integer overflow") }
                return .int(r)
            case .bool(let b): return .int(b ? -1 : 0)
            case .float(let d): return .float(-d)
            case .undefined(let m): throw error(e.line, m)
            default: throw error(e.line, "bad operand type for unary -: '\(v.typeName)'")
            }
        case .pos(let x):
            let v = try eval(x)
            switch v {
            case .int, .float: return v
            case .bool(let b): return .int(b ? 1 : 0)
            case .undefined(let m): throw error(e.line, m)
            default: throw error(e.line, "bad operand type for unary +: '\(v.typeName)'")
            }
        case .not(let x):
            return .bool(!(try eval(x).truthy))
        case .and(let a, let b):
            let av = try eval(a)
            return av.truthy ? try eval(b) : av
        case .or(let a, let b):
            let av = try eval(a)
            return av.truthy ? av : try eval(b)
        case .binary(let op, let a, let b):
            return try binary(op, try eval(a), try eval(b), e.line)
        case .compare(let first, let ops):
            var left = try eval(first)
            for (op, rhsExpr) in ops {
                let right = try eval(rhsExpr)
                if !(try compare(op, left, right, e.line)) { return .bool(false) }
                left = right
            }
            return .bool(true)
        case .condexpr(let test, let then, let otherwise):
            if try eval(test).truthy { return try eval(then) }
            if let otherwise { return try eval(otherwise) }
            return .undefined("the inline if-expression on line \(e.line) evaluated to false and no else section was defined.")
        }
    }

    // MARK: iteration

    func iterate(_ v: Value, _ line: Int) throws -> [Value] {
        switch v {
        case .list(let a), .tuple(let a): return a
        case .dict(let d): return d.keys.map { .string($0) }
        case .string(let s): return s.unicodeScalars.map { .string(String($0)) }
        case .undefined: return []
        case .namespace, .loop, .callable, .none, .bool, .int, .float:
            throw error(line, "'\(v.typeName)' object is not iterable")
        }
    }

    // MARK: attribute and item access

    func objectTypeRepr(_ v: Value) -> String {
        if case .none = v { return "'None'" }
        if case .namespace = v { return "'jinja2.utils.Namespace object'" }
        return "'\(v.typeName) object'"
    }

    func noAttribute(_ v: Value, _ name: String) -> Value {
        .undefined("\(objectTypeRepr(v)) has no attribute \(pyStringRepr(name))")
    }

    func getattr(_ v: Value, _ name: String, _ line: Int) throws -> Value {
        switch v {
        case .undefined(let m):
            throw error(line, m)
        case .dict(let d):
            if Builtins.dictMethods.contains(name) { return .callable(.method(v, name)) }
            if Builtins.unsafeDictMethods.contains(name) { return unsafe(v, name) }
            return d[name] ?? noAttribute(v, name)
        case .namespace(let id):
            if id < namespaces.count, let x = namespaces[id][name] { return x }
            return noAttribute(v, name)
        case .string:
            if Builtins.stringMethods.contains(name) { return .callable(.method(v, name)) }
            return noAttribute(v, name)
        case .list, .tuple:
            if Builtins.listMethods.contains(name) { return .callable(.method(v, name)) }
            if case .list = v, Builtins.unsafeListMethods.contains(name) { return unsafe(v, name) }
            return noAttribute(v, name)
        case .loop(let l):
            switch name {
            case "index": return .int(l.index0 + 1)
            case "index0": return .int(l.index0)
            case "revindex": return .int(l.length - l.index0)
            case "revindex0": return .int(l.length - l.index0 - 1)
            case "first": return .bool(l.index0 == 0)
            case "last": return .bool(l.index0 == l.length - 1)
            case "length": return .int(l.length)
            case "depth": return .int(l.depth0 + 1)
            case "depth0": return .int(l.depth0)
            case "previtem": return l.previtem ?? .undefined("there is no previous item")
            case "nextitem": return l.nextitem ?? .undefined("there is no next item")
            case "cycle": return .callable(.loopCycle(l.index0))
            default: return noAttribute(v, name)
            }
        default:
            return noAttribute(v, name)
        }
    }

    func unsafe(_ v: Value, _ name: String) -> Value {
        .undefined("access to attribute \(pyStringRepr(name)) of '\(v.typeName)' object is unsafe.")
    }

    func getitem(_ v: Value, _ key: Value, _ line: Int) throws -> Value {
        switch (v, key) {
        case (.undefined(let m), _):
            throw error(line, m)
        case (.dict(let d), .string(let k)):
            if let x = d[k] { return x }
            return try getattr(v, k, line)
        case (.list(let a), _), (.tuple(let a), _):
            if let i = indexValue(key) {
                let j = i < 0 ? i + a.count : i
                if j >= 0, j < a.count { return a[j] }
                return .undefined("\(objectTypeRepr(v)) has no element \(key.repr)")
            }
        case (.string(let s), _):
            if let i = indexValue(key) {
                let scalars = Array(s.unicodeScalars)
                let j = i < 0 ? i + scalars.count : i
                if j >= 0, j < scalars.count { return .string(String(scalars[j])) }
                return .undefined("\(objectTypeRepr(v)) has no element \(key.repr)")
            }
        default:
            break
        }
        if case .string(let k) = key { return try getattr(v, k, line) }
        return .undefined("\(objectTypeRepr(v)) has no element \(key.repr)")
    }

    func indexValue(_ v: Value) -> Int? {
        switch v {
        case .int(let i): return i
        case .bool(let b): return b ? 1 : 0
        default: return nil
        }
    }

    func slice(_ v: Value, _ lo: Value?, _ hi: Value?, _ step: Value?, _ line: Int) throws -> Value {
        func bound(_ x: Value?) throws -> Int? {
            guard let x, !x.isNone else { return nil }
            if case .undefined(let m) = x { throw error(line, m) }
            guard let i = indexValue(x) else {
                throw error(line, "slice indices must be integers or None")
            }
            return i
        }
        let st = try bound(step) ?? 1
        if st == 0 { throw error(line, "slice step cannot be zero") }
        let start = try bound(lo)
        let stop = try bound(hi)
        func indices(_ n: Int) -> [Int] {
            func adjust(_ x: Int?, _ dflt: Int) -> Int {
                guard var x else { return dflt }
                if x < 0 {
                    x += n
                    if x < 0 { x = st < 0 ? -1 : 0 }
                } else if x >= n {
                    x = st < 0 ? n - 1 : n
                }
                return x
            }
            let a = adjust(start, st < 0 ? n - 1 : 0)
            let b = adjust(stop, st < 0 ? -1 : n)
            var out: [Int] = []
            var i = a
            while st > 0 ? i < b : i > b {
                out.append(i)
                let (next, o) = i.addingReportingOverflow(st)
                if o { break }
                i = next
            }
            return out
        }
        switch v {
        case .list(let a): return .list(indices(a.count).map { a[$0] })
        case .tuple(let a): return .tuple(indices(a.count).map { a[$0] })
        case .string(let s):
            let sc = Array(s.unicodeScalars)
            var r = String.UnicodeScalarView()
            for i in indices(sc.count) { r.append(sc[i]) }
            return .string(String(r))
        case .undefined(let m): throw error(line, m)
        default: throw error(line, "'\(v.typeName)' object is not subscriptable")
        }
    }

    // MARK: calls

    func call(_ fn: Value, _ args: [Value], _ kwargs: [(String, Value)], _ line: Int) throws -> Value {
        switch fn {
        case .callable(.global(let name)):
            return try callGlobal(name, args, kwargs, line)
        case .callable(.method(let recv, let name)):
            return try callMethod(recv, name, args, kwargs, line)
        case .callable(.macro(let id)):
            return try callMacro(id, args, kwargs, caller: nil, line)
        case .callable(.loopCycle(let idx)):
            guard !args.isEmpty else { throw error(line, "no items for cycling given") }
            return args[idx % args.count]
        case .undefined(let m):
            throw error(line, m)
        default:
            throw error(line, "'\(fn.typeName)' object is not callable")
        }
    }

    func callMacro(_ id: Int, _ args: [Value], _ kwargs: [(String, Value)], caller: Value?, _ line: Int) throws -> Value {
        guard id < macros.count else { throw error(line, "invalid macro") }
        callDepth += 1
        defer { callDepth -= 1 }
        if callDepth > limits.maxCallDepth {
            throw EbbError(.resourceExhausted, "template line \(line): macro calls nested too deeply (limit \(limits.maxCallDepth))")
        }
        let entry = macros[id]
        let savedScopes = scopes
        scopes = [scopes[0]] + entry.captured + [[:]]
        defer {
            // Keep root-level changes (none are possible from inside a macro body, but be safe).
            scopes = savedScopes
        }
        var kw = kwargs
        for (i, (pname, dflt)) in entry.def.params.enumerated() {
            let v: Value
            if i < args.count {
                v = args[i]
            } else if let k = kw.firstIndex(where: { $0.0 == pname }) {
                v = kw[k].1
                kw.remove(at: k)
            } else if let dflt {
                v = try eval(dflt)
            } else {
                v = .undefined("parameter \(pyStringRepr(pname)) was not provided")
            }
            scopes[scopes.count - 1][pname] = v
        }
        scopes[scopes.count - 1]["varargs"] = .tuple(Array(args.dropFirst(entry.def.params.count)))
        scopes[scopes.count - 1]["kwargs"] = .dict(VDict(kw))
        if let caller { scopes[scopes.count - 1]["caller"] = caller }
        return .string(try capture(entry.def.body))
    }
}
