enum BinaryOp: String, Sendable {
    case add = "+", sub = "-", mul = "*", div = "/", floordiv = "//", mod = "%", pow = "**", concat = "~"
}

enum CompareOp: String, Sendable {
    case eq = "==", ne = "!=", lt = "<", le = "<=", gt = ">", ge = ">=", `in` = "in", notIn = "not in"
}

struct Arguments: Sendable {
    var positional: [Expr] = []
    var keyword: [(String, Expr)] = []
}

struct Expr: Sendable {
    let line: Int
    let kind: ExprKind
    /// Height of this expression tree (evaluation recursion is bounded by it).
    let depth: Int

    init(_ kind: ExprKind, line: Int) {
        self.line = line
        self.kind = kind
        var d = 0
        func m(_ e: Expr?) { if let e, e.depth > d { d = e.depth } }
        func args(_ a: Arguments) { a.positional.forEach(m); a.keyword.forEach { m($0.1) } }
        switch kind {
        case .literal, .name: break
        case .list(let xs), .tuple(let xs): xs.forEach(m)
        case .dict(let kvs): kvs.forEach { m($0.0); m($0.1) }
        case .getattr(let e, _), .neg(let e), .pos(let e), .not(let e): m(e)
        case .getitem(let a, let b), .and(let a, let b), .or(let a, let b), .binary(_, let a, let b): m(a); m(b)
        case .slice(let a, let b, let c, let e): m(a); m(b); m(c); m(e)
        case .call(let e, let a), .filter(let e, _, let a), .test(let e, _, let a): m(e); args(a)
        case .compare(let e, let ops): m(e); ops.forEach { m($0.1) }
        case .condexpr(let a, let b, let c): m(a); m(b); m(c)
        }
        self.depth = d + 1
    }
}

indirect enum ExprKind: Sendable {
    case literal(Value)
    case name(String)
    case list([Expr])
    case tuple([Expr])
    case dict([(Expr, Expr)])
    case getattr(Expr, String)
    case getitem(Expr, Expr)
    case slice(Expr, Expr?, Expr?, Expr?)
    case call(Expr, Arguments)
    case filter(Expr, String, Arguments)
    case test(Expr, String, Arguments)
    case neg(Expr)
    case pos(Expr)
    case not(Expr)
    case and(Expr, Expr)
    case or(Expr, Expr)
    case binary(BinaryOp, Expr, Expr)
    case compare(Expr, [(CompareOp, Expr)])
    case condexpr(test: Expr, then: Expr, otherwise: Expr?)
}

indirect enum Target: Sendable {
    case name(String)
    case tuple([Target])
    case attribute(String, String)  // namespace.attr

    var names: [String] {
        switch self {
        case .name(let n): return [n]
        case .tuple(let ts): return ts.flatMap(\.names)
        case .attribute: return []
        }
    }
}

struct FilterCall: Sendable {
    let name: String
    let args: Arguments
    let line: Int
}

struct MacroDef: Sendable {
    let name: String
    let params: [(String, Expr?)]
    let body: [Stmt]
}

struct Stmt: Sendable {
    let line: Int
    let kind: StmtKind
}

indirect enum StmtKind: Sendable {
    case data(String)
    case output(Expr)
    case ifStmt([(Expr, [Stmt])], [Stmt]?)
    case forStmt(target: Target, iter: Expr, filter: Expr?, body: [Stmt], orElse: [Stmt]?)
    case set(Target, Expr)
    case setBlock(Target, [FilterCall], [Stmt])
    case macro(MacroDef)
    case callBlock(call: Expr, callerParams: [(String, Expr?)], body: [Stmt])
    case filterBlock([FilterCall], [Stmt])
    case with([(Target, Expr)], [Stmt])
    case generation([Stmt])
    case breakLoop
    case continueLoop
}
