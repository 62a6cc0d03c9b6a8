import EbbCore

/// A parsed Jinja template: the subset of Jinja2 that Hugging Face chat templates use,
/// configured like transformers' `ImmutableSandboxedEnvironment(trim_blocks=True,
/// lstrip_blocks=True)` with the `loopcontrols` extension, `raise_exception`,
/// `strftime_now` and a `json.dumps`-compatible `tojson`.
///
/// Parsing checks every tag, filter and test name, so an unsupported construct fails here
/// (with its line number) rather than rendering a wrong prompt later. Rendering throws
/// `EbbError(.template, …)`; a template's own `raise_exception(msg)` throws
/// `EbbError(.template, msg)` with the message unchanged. Budgets in `Limits` bound output
/// size, loop iterations and macro recursion (`.resourceExhausted` when exceeded).
public struct JinjaTemplate: Sendable {
    public struct Limits: Sendable {
        /// Total bytes a render may write (and the largest string it may build).
        public var maxOutputBytes: Int
        /// Total loop iterations across the whole render.
        public var maxIterations: Int
        /// Nested macro calls.
        public var maxCallDepth: Int

        public init(maxOutputBytes: Int = 64 << 20, maxIterations: Int = 1_000_000, maxCallDepth: Int = 50) {
            self.maxOutputBytes = maxOutputBytes
            self.maxIterations = maxIterations
            self.maxCallDepth = maxCallDepth
        }
    }

    public let source: String
    public var limits: Limits
    let body: [Stmt]

    public init(_ source: String, limits: Limits = Limits()) throws {
        self.source = source
        self.limits = limits
        var lexer = Lexer(source: source)
        let tokens = try lexer.tokenize()
        var parser = Parser(tokens: tokens)
        self.body = try parser.parseTemplate()
    }

    /// Renders with the given variables.
    public func render(_ context: [String: JinjaValue]) throws -> String {
        var ctx: [String: Value] = [:]
        for (k, v) in context { ctx[k] = Value(v) }
        let r = Renderer(context: ctx, limits: limits)
        return try r.render(body)
    }
}
