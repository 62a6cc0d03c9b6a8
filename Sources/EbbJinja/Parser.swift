import EbbCore

/// Recursive-descent parser mirroring `jinja2.parser.Parser` for the supported subset.
struct Parser {
    static let maxNesting = 100
    static let maxExprDepth = 250

    private let tokens: [Token]
    private var i = 0
    private var nesting = 0
    private var loopDepth = 0

    init(tokens: [Token]) {
        self.tokens = tokens.isEmpty ? [Token(kind: .eof, line: 1)] : tokens
    }

    // MARK: token helpers

    private var cur: Token { tokens[Swift.min(i, tokens.count - 1)] }
    private func look(_ n: Int = 1) -> Token { tokens[Swift.min(i + n, tokens.count - 1)] }
    private mutating func advance() { if i < tokens.count - 1 { i += 1 } }

    private func describe(_ k: TokenKind) -> String {
        switch k {
        case .data: return "template data"
        case .variableBegin: return "begin of print statement"
        case .variableEnd: return "end of print statement"
        case .blockBegin: return "begin of statement block"
        case .blockEnd: return "end of statement block"
        case .name(let n): return "'\(n)'"
        case .string: return "string"
        case .integer: return "integer"
        case .float: return "float"
        case .op(let o): return "'\(o)'"
        case .eof: return "end of template"
        }
    }

    private func fail(_ msg: String, _ line: Int? = nil) -> EbbError {
        templateError(line ?? cur.line, msg)
    }

    private func isName(_ n: String, _ t: Token? = nil) -> Bool {
        if case .name(let x) = (t ?? cur).kind { return x == n }
        return false
    }

    private func isOp(_ o: String, _ t: Token? = nil) -> Bool {
        if case .op(let x) = (t ?? cur).kind { return x == o }
        return false
    }

    private mutating func expectOp(_ o: String) throws {
        guard isOp(o) else { throw fail("expected '\(o)', got \(describe(cur.kind))") }
        advance()
    }

    private mutating func expectName() throws -> String {
        guard case .name(let n) = cur.kind else { throw fail("expected a name, got \(describe(cur.kind))") }
        advance()
        return n
    }

    private mutating func expectBlockEnd() throws {
        guard cur.kind == .blockEnd else {
            throw fail("expected end of statement block, got \(describe(cur.kind))")
        }
        advance()
    }

    private mutating func enter() throws {
        nesting += 1
        if nesting > Parser.maxNesting { throw fail("template nested too deeply (limit \(Parser.maxNesting))") }
    }

    private func node(_ k: ExprKind, _ line: Int) throws -> Expr {
        let e = Expr(k, line: line)
        if e.depth > Parser.maxExprDepth { throw fail("expression too deeply nested (limit \(Parser.maxExprDepth))", line) }
        return e
    }

    // MARK: template structure

    mutating func parseTemplate() throws -> [Stmt] {
        let (body, _) = try parseBody(until: [])
        return body
    }

    /// Parses statements until a block tag named in `endTags`; consumes that tag's name.
    private mutating func parseBody(until endTags: Set<String>) throws -> ([Stmt], String?) {
        var out: [Stmt] = []
        while true {
            let t = cur
            switch t.kind {
            case .data(let s):
                out.append(Stmt(line: t.line, kind: .data(s)))
                advance()
            case .variableBegin:
                advance()
                let e = try parseTuple()
                guard cur.kind == .variableEnd else {
                    throw fail("expected end of print statement, got \(describe(cur.kind))")
                }
                advance()
                out.append(Stmt(line: t.line, kind: .output(e)))
            case .blockBegin:
                advance()
                guard case .name(let tag) = cur.kind else { throw fail("tag name expected") }
                if endTags.contains(tag) {
                    advance()
                    return (out, tag)
                }
                out.append(try parseStatement(tag, line: cur.line, endTags: endTags))
            case .eof:
                if endTags.isEmpty { return (out, nil) }
                let names = endTags.sorted().map { "'\($0)'" }.joined(separator: " or ")
                throw fail("unexpected end of template; expected \(names)")
            default:
                throw fail("unexpected \(describe(t.kind))")
            }
        }
    }

    private mutating func parseStatement(_ tag: String, line: Int, endTags: Set<String>) throws -> Stmt {
        try enter()
        defer { nesting -= 1 }
        advance()  // the tag name
        switch tag {
        case "if":
            var branches: [(Expr, [Stmt])] = []
            var test = try parseTuple(withCondexpr: false)
            try expectBlockEnd()
            while true {
                let (body, end) = try parseBody(until: ["elif", "else", "endif"])
                branches.append((test, body))
                switch end {
                case "elif":
                    test = try parseTuple(withCondexpr: false)
                    try expectBlockEnd()
                case "else":
                    try expectBlockEnd()
                    let (elseBody, _) = try parseBody(until: ["endif"])
                    try expectBlockEnd()
                    return Stmt(line: line, kind: .ifStmt(branches, elseBody))
                default:
                    try expectBlockEnd()
                    return Stmt(line: line, kind: .ifStmt(branches, nil))
                }
            }
        case "for":
            let target = try parseAssignTarget(extraEnd: ["in"])
            guard isName("in") else { throw fail("expected 'in', got \(describe(cur.kind))") }
            advance()
            let iter = try parseTuple(withCondexpr: false, extraEnd: ["recursive"])
            var filter: Expr? = nil
            if isName("if") {
                advance()
                filter = try parseExpression()
            }
            if isName("recursive") { throw fail("recursive for loops are not supported") }
            try expectBlockEnd()
            loopDepth += 1
            let (body, end) = try parseBody(until: ["endfor", "else"])
            loopDepth -= 1
            var orElse: [Stmt]? = nil
            if end == "else" {
                try expectBlockEnd()
                orElse = try parseBody(until: ["endfor"]).0
            }
            try expectBlockEnd()
            return Stmt(line: line, kind: .forStmt(target: target, iter: iter, filter: filter, body: body, orElse: orElse))
        case "set":
            let target = try parseAssignTarget(withNamespace: true)
            if isOp("=") {
                advance()
                let e = try parseTuple()
                try expectBlockEnd()
                return Stmt(line: line, kind: .set(target, e))
            }
            let filters = try parseFilterChain(startInline: false)
            try expectBlockEnd()
            let (body, _) = try parseBody(until: ["endset"])
            try expectBlockEnd()
            return Stmt(line: line, kind: .setBlock(target, filters, body))
        case "macro":
            let name = try expectName()
            let params = try parseSignature()
            try expectBlockEnd()
            let saved = loopDepth
            loopDepth = 0
            let (body, _) = try parseBody(until: ["endmacro"])
            loopDepth = saved
            if case .name = cur.kind { advance() }
            try expectBlockEnd()
            return Stmt(line: line, kind: .macro(MacroDef(name: name, params: params, body: body)))
        case "call":
            var params: [(String, Expr?)] = []
            if isOp("(") { params = try parseSignature() }
            let call = try parseExpression()
            guard case .call = call.kind else { throw fail("expected call", line) }
            try expectBlockEnd()
            let saved = loopDepth
            loopDepth = 0
            let (body, _) = try parseBody(until: ["endcall"])
            loopDepth = saved
            try expectBlockEnd()
            return Stmt(line: line, kind: .callBlock(call: call, callerParams: params, body: body))
        case "filter":
            let filters = try parseFilterChain(startInline: true)
            try expectBlockEnd()
            let (body, _) = try parseBody(until: ["endfilter"])
            try expectBlockEnd()
            return Stmt(line: line, kind: .filterBlock(filters, body))
        case "with":
            var assigns: [(Target, Expr)] = []
            while cur.kind != .blockEnd {
                if !assigns.isEmpty { try expectOp(",") }
                let t = try parseAssignTarget()
                try expectOp("=")
                assigns.append((t, try parseExpression()))
            }
            try expectBlockEnd()
            let (body, _) = try parseBody(until: ["endwith"])
            try expectBlockEnd()
            return Stmt(line: line, kind: .with(assigns, body))
        case "generation":
            try expectBlockEnd()
            let (body, _) = try parseBody(until: ["endgeneration"])
            try expectBlockEnd()
            return Stmt(line: line, kind: .generation(body))
        case "print":
            let e = try parseTuple()
            try expectBlockEnd()
            return Stmt(line: line, kind: .output(e))
        case "break", "continue":
            if loopDepth == 0 { throw fail("'\(tag)' outside of a loop", line) }
            try expectBlockEnd()
            return Stmt(line: line, kind: tag == "break" ? .breakLoop : .continueLoop)
        case "block", "extends", "include", "import", "from", "autoescape", "do", "trans":
            throw fail("unsupported tag '\(tag)'", line)
        default:
            if !endTags.isEmpty {
                let names = endTags.sorted().map { "'\($0)'" }.joined(separator: " or ")
                throw fail("unknown tag '\(tag)'; the innermost open block expects \(names)", line)
            }
            throw fail("unknown tag '\(tag)'", line)
        }
    }

    private mutating func parseSignature() throws -> [(String, Expr?)] {
        try expectOp("(")
        var params: [(String, Expr?)] = []
        while !isOp(")") {
            if !params.isEmpty { try expectOp(",") }
            if isOp(")") { break }
            let name = try expectName()
            if isOp("=") {
                advance()
                params.append((name, try parseExpression()))
            } else {
                if params.contains(where: { $0.1 != nil }) { throw fail("non-default argument follows default argument") }
                params.append((name, nil))
            }
        }
        try expectOp(")")
        return params
    }

    private mutating func parseAssignTarget(withNamespace: Bool = false, extraEnd: Set<String> = []) throws -> Target {
        if withNamespace, case .name(let ns) = cur.kind, isOp(".", look()) {
            advance()
            advance()
            let attr = try expectName()
            return .attribute(ns, attr)
        }
        var items: [Target] = []
        var isTuple = false
        while true {
            if !items.isEmpty { try expectOp(",") }
            if cur.kind == .blockEnd || isOp(")") { break }
            if case .name(let n) = cur.kind, extraEnd.contains(n) { break }
            items.append(try parseTargetPrimary())
            if isOp(",") { isTuple = true } else { break }
        }
        if !isTuple {
            guard let t = items.first else { throw fail("expected an assignment target, got \(describe(cur.kind))") }
            return t
        }
        return .tuple(items)
    }

    private mutating func parseTargetPrimary() throws -> Target {
        if case .name(let n) = cur.kind {
            if ["true", "false", "none", "True", "False", "None"].contains(n) { throw fail("can't assign to constant") }
            advance()
            return .name(n)
        }
        if isOp("(") {
            try enter()
            defer { nesting -= 1 }
            advance()
            let t = try parseAssignTarget()
            try expectOp(")")
            return t
        }
        throw fail("can't assign to \(describe(cur.kind))")
    }

    // MARK: expressions

    private func isTupleEnd(_ extraEnd: Set<String>) -> Bool {
        switch cur.kind {
        case .variableEnd, .blockEnd: return true
        case .op(")"): return true
        case .name(let n): return extraEnd.contains(n)
        default: return false
        }
    }

    private mutating func parseTuple(withCondexpr: Bool = true, extraEnd: Set<String> = [], explicitParens: Bool = false)
        throws -> Expr
    {
        let line = cur.line
        var args: [Expr] = []
        var isTuple = false
        while true {
            if !args.isEmpty { try expectOp(",") }
            if isTupleEnd(extraEnd) { break }
            args.append(withCondexpr ? try parseExpression() : try parseOr())
            if isOp(",") { isTuple = true } else { break }
        }
        if !isTuple {
            if let a = args.first { return a }
            if !explicitParens { throw fail("expected an expression, got \(describe(cur.kind))") }
        }
        return try node(.tuple(args), line)
    }

    mutating func parseExpression() throws -> Expr {
        try parseCondexpr()
    }

    private mutating func parseCondexpr() throws -> Expr {
        var e = try parseOr()
        while isName("if") {
            let line = cur.line
            advance()
            let test = try parseOr()
            var otherwise: Expr? = nil
            if isName("else") {
                advance()
                try enter()
                defer { nesting -= 1 }
                otherwise = try parseCondexpr()
            }
            e = try node(.condexpr(test: test, then: e, otherwise: otherwise), line)
        }
        return e
    }

    private mutating func parseOr() throws -> Expr {
        var e = try parseAnd()
        while isName("or") {
            let line = cur.line
            advance()
            e = try node(.or(e, try parseAnd()), line)
        }
        return e
    }

    private mutating func parseAnd() throws -> Expr {
        var e = try parseNot()
        while isName("and") {
            let line = cur.line
            advance()
            e = try node(.and(e, try parseNot()), line)
        }
        return e
    }

    private mutating func parseNot() throws -> Expr {
        if isName("not") {
            let line = cur.line
            advance()
            try enter()
            defer { nesting -= 1 }
            return try node(.not(try parseNot()), line)
        }
        return try parseCompare()
    }

    private mutating func parseCompare() throws -> Expr {
        let line = cur.line
        let e = try parseMath1()
        var ops: [(CompareOp, Expr)] = []
        while true {
            if case .op(let o) = cur.kind, let op = CompareOp(rawValue: o), op != .in, op != .notIn {
                advance()
                ops.append((op, try parseMath1()))
            } else if isName("in") {
                advance()
                ops.append((.in, try parseMath1()))
            } else if isName("not"), isName("in", look()) {
                advance()
                advance()
                ops.append((.notIn, try parseMath1()))
            } else {
                break
            }
        }
        if ops.isEmpty { return e }
        return try node(.compare(e, ops), line)
    }

    private mutating func parseMath1() throws -> Expr {
        var e = try parseConcat()
        while case .op(let o) = cur.kind, o == "+" || o == "-" {
            let line = cur.line
            advance()
            e = try node(.binary(o == "+" ? .add : .sub, e, try parseConcat()), line)
        }
        return e
    }

    private mutating func parseConcat() throws -> Expr {
        var e = try parseMath2()
        while isOp("~") {
            let line = cur.line
            advance()
            e = try node(.binary(.concat, e, try parseMath2()), line)
        }
        return e
    }

    private mutating func parseMath2() throws -> Expr {
        var e = try parsePow()
        while case .op(let o) = cur.kind, let op = BinaryOp(rawValue: o), [.mul, .div, .floordiv, .mod].contains(op) {
            let line = cur.line
            advance()
            e = try node(.binary(op, e, try parsePow()), line)
        }
        return e
    }

    private mutating func parsePow() throws -> Expr {
        var e = try parseUnary()
        while isOp("**") {
            let line = cur.line
            advance()
            e = try node(.binary(.pow, e, try parseUnary()), line)
        }
        return e
    }

    private mutating func parseUnary(withFilter: Bool = true) throws -> Expr {
        try enter()
        defer { nesting -= 1 }
        let line = cur.line
        var e: Expr
        if isOp("-") {
            advance()
            e = try node(.neg(try parseUnary(withFilter: false)), line)
        } else if isOp("+") {
            advance()
            e = try node(.pos(try parseUnary(withFilter: false)), line)
        } else {
            e = try parsePrimary()
        }
        e = try parsePostfix(e)
        if withFilter { e = try parseFilterExpr(e) }
        return e
    }

    private mutating func parsePrimary() throws -> Expr {
        let t = cur
        switch t.kind {
        case .name(let n):
            advance()
            switch n {
            case "true", "True": return try node(.literal(.bool(true)), t.line)
            case "false", "False": return try node(.literal(.bool(false)), t.line)
            case "none", "None": return try node(.literal(.none), t.line)
            default: return try node(.name(n), t.line)
            }
        case .string(var s):
            advance()
            while case .string(let more) = cur.kind {
                s += more
                advance()
            }
            return try node(.literal(.string(s)), t.line)
        case .integer(let v):
            advance()
            return try node(.literal(.int(v)), t.line)
        case .float(let v):
            advance()
            return try node(.literal(.float(v)), t.line)
        case .op("("):
            advance()
            let e = try parseTuple(explicitParens: true)
            try expectOp(")")
            return e
        case .op("["):
            advance()
            var items: [Expr] = []
            while !isOp("]") {
                if !items.isEmpty { try expectOp(",") }
                if isOp("]") { break }
                items.append(try parseExpression())
            }
            try expectOp("]")
            return try node(.list(items), t.line)
        case .op("{"):
            advance()
            var items: [(Expr, Expr)] = []
            while !isOp("}") {
                if !items.isEmpty { try expectOp(",") }
                if isOp("}") { break }
                let k = try parseExpression()
                try expectOp(":")
                items.append((k, try parseExpression()))
            }
            try expectOp("}")
            return try node(.dict(items), t.line)
        default:
            throw fail("unexpected \(describe(t.kind))")
        }
    }

    private mutating func parsePostfix(_ start: Expr) throws -> Expr {
        var e = start
        while true {
            let line = cur.line
            if isOp(".") {
                advance()
                switch cur.kind {
                case .name(let n):
                    advance()
                    e = try node(.getattr(e, n), line)
                case .integer(let v):
                    advance()
                    e = try node(.getitem(e, Expr(.literal(.int(v)), line: line)), line)
                default:
                    throw fail("expected name or number after '.'")
                }
            } else if isOp("[") {
                advance()
                var args: [Expr] = []
                while !isOp("]") {
                    if !args.isEmpty { try expectOp(",") }
                    args.append(try parseSubscribed())
                }
                try expectOp("]")
                guard let a = args.first else { throw fail("expected a subscript", line) }
                if args.count > 1 {
                    for x in args { if case .slice = x.kind { throw fail("multi-dimensional slices are not supported", line) } }
                    e = try node(.getitem(e, try node(.tuple(args), line)), line)
                } else if case .slice(_, let lo, let hi, let step) = a.kind {
                    e = try node(.slice(e, lo, hi, step), line)
                } else {
                    e = try node(.getitem(e, a), line)
                }
            } else if isOp("(") {
                e = try node(.call(e, try parseCallArgs()), line)
            } else {
                return e
            }
        }
    }

    /// Returns either an expression or a `.slice` placeholder whose first operand is unused.
    private mutating func parseSubscribed() throws -> Expr {
        let line = cur.line
        var lo: Expr? = nil
        if isOp(":") {
            advance()
        } else {
            let e = try parseExpression()
            if !isOp(":") { return e }
            advance()
            lo = e
        }
        var hi: Expr? = nil
        if !isOp(":") && !isOp("]") && !isOp(",") { hi = try parseExpression() }
        var step: Expr? = nil
        if isOp(":") {
            advance()
            if !isOp("]") && !isOp(",") { step = try parseExpression() }
        }
        return try node(.slice(Expr(.literal(.none), line: line), lo, hi, step), line)
    }

    private mutating func parseCallArgs() throws -> Arguments {
        try expectOp("(")
        var args = Arguments()
        while !isOp(")") {
            if !args.positional.isEmpty || !args.keyword.isEmpty {
                try expectOp(",")
                if isOp(")") { break }
            }
            if isOp("*") || isOp("**") { throw fail("*args and **kwargs in calls are not supported") }
            if case .name(let key) = cur.kind, isOp("=", look()) {
                advance()
                advance()
                args.keyword.append((key, try parseExpression()))
            } else {
                if !args.keyword.isEmpty { throw fail("positional argument follows keyword argument") }
                args.positional.append(try parseExpression())
            }
        }
        try expectOp(")")
        return args
    }

    private mutating func parseFilterExpr(_ start: Expr) throws -> Expr {
        var e = start
        while true {
            if isOp("|") {
                e = try parseFilters(e)
            } else if isName("is") {
                e = try parseTest(e)
            } else if isOp("(") {
                let line = cur.line
                e = try node(.call(e, try parseCallArgs()), line)
            } else {
                return e
            }
        }
    }

    private mutating func parseFilterName() throws -> String {
        var name = try expectName()
        while isOp(".") {
            advance()
            name += "." + (try expectName())
        }
        return name
    }

    private mutating func parseFilters(_ start: Expr) throws -> Expr {
        var e = start
        for f in try parseFilterChain(startInline: false) {
            e = try node(.filter(e, f.name, f.args), f.line)
        }
        return e
    }

    private mutating func parseFilterChain(startInline: Bool) throws -> [FilterCall] {
        var out: [FilterCall] = []
        var inline = startInline
        while isOp("|") || inline {
            if !inline { advance() }
            inline = false
            let line = cur.line
            let name = try parseFilterName()
            guard Builtins.filterNames.contains(name) else { throw fail("unknown filter '\(name)'", line) }
            let args = isOp("(") ? try parseCallArgs() : Arguments()
            out.append(FilterCall(name: name, args: args, line: line))
        }
        return out
    }

    private mutating func parseTest(_ subject: Expr) throws -> Expr {
        let line = cur.line
        advance()  // 'is'
        var negated = false
        if isName("not") {
            advance()
            negated = true
        }
        let name = try parseFilterName()
        guard Builtins.testNames.contains(name) else { throw fail("unknown test '\(name)'", line) }
        var args = Arguments()
        if isOp("(") {
            args = try parseCallArgs()
        } else {
            var takesArg = false
            switch cur.kind {
            case .name(let n): takesArg = !["else", "or", "and"].contains(n)
            case .string, .integer, .float, .op("["), .op("{"): takesArg = true
            default: break
            }
            if takesArg {
                if isName("is") { throw fail("you cannot chain multiple tests with is") }
                try enter()
                defer { nesting -= 1 }
                args.positional = [try parsePostfix(try parsePrimary())]
            }
        }
        var e = try node(.test(subject, name, args), line)
        if negated { e = try node(.not(e), line) }
        return e
    }
}
