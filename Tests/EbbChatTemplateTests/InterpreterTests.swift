import EbbCore
import EbbJinja
import Testing

func render(_ source: String, _ context: [String: JinjaValue] = [:], limits: JinjaTemplate.Limits = .init()) throws
    -> String
{
    try JinjaTemplate(source, limits: limits).render(context)
}

/// Expects `source` to fail when loaded (not when rendered), with `fragment` and the line in the message.
func expectLoadError(_ source: String, _ fragment: String, line: Int, sourceLocation: SourceLocation = #_sourceLocation) {
    do {
        _ = try JinjaTemplate(source)
        Issue.record("expected a load error for \(source.debugDescription)", sourceLocation: sourceLocation)
    } catch let e as EbbError {
        #expect(e.code == .template, sourceLocation: sourceLocation)
        #expect(e.message.contains(fragment), "\(e.message)", sourceLocation: sourceLocation)
        #expect(e.message.contains("line \(line)"), "\(e.message)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("unexpected error type \(error)", sourceLocation: sourceLocation)
    }
}

@Suite struct ReferenceSnippetTests {
    /// ~100 one-line templates covering expressions, filters, tests, loops, whitespace
    /// control and errors, each checked against Python Jinja2's output.
    @Test func snippetsMatchPythonJinja() throws {
        guard case .object(let ctxObject) = try JinjaValue(jsonString: ReferenceCases.snippetContext) else {
            Issue.record("bad context")
            return
        }
        var ctx: [String: JinjaValue] = [:]
        for (k, v) in ctxObject.pairs { ctx[k] = v }
        let cases = try jsonArray(ReferenceCases.snippets)
        #expect(cases.count > 90)
        for c in cases {
            guard case .string(let src)? = c["template"] else { continue }
            if case .string(let expected)? = c["expected"] {
                do {
                    let got = try render(src, ctx)
                    #expect(sameBytes(got, expected), "\(src)\n got: \(got.debugDescription)\nwant: \(expected.debugDescription)")
                } catch {
                    Issue.record("\(src): unexpected error \(error)")
                }
            } else if case .string(let raised)? = c["raises"] {
                #expect(throws: EbbError(.template, raised)) { try render(src, ctx) }
            } else {
                #expect(throws: EbbError.self, "\(src)") { try render(src, ctx) }
            }
        }
    }
}

@Suite struct WhitespaceTests {
    @Test func trimBlocksRemovesOneNewlineAfterBlockTags() throws {
        #expect(try render("{% if true %}\nx\n{% endif %}\ny") == "x\ny")
        #expect(try render("{% if true %}\n\nx{% endif %}") == "\nx")
        // Not after variable tags.
        #expect(try render("{{ 'a' }}\nb") == "a\nb")
        // Comments count as blocks.
        #expect(try render("{# c #}\nx") == "x")
    }

    @Test func lstripBlocksRemovesIndentBeforeBlockTags() throws {
        #expect(try render("a\n    {% if true %}\n    b\n    {% endif %}\nc") == "a\n    b\nc")
        // Only when the tag starts the line.
        #expect(try render("a  {% if true %}b{% endif %}") == "a  b")
        // Not before variable tags.
        #expect(try render("a\n  {{ 'b' }}") == "a\n  b")
        // `+` disables it.
        #expect(try render("a\n  {%+ if true %}b{% endif %}") == "a\n  b")
    }

    @Test func minusStripsAllWhitespace() throws {
        #expect(try render("a  \n\n  {%- if true -%}  \n\n b {%- endif %}") == "ab")
        #expect(try render("x \n {{- 'y' -}} \n z") == "xyz")
        #expect(try render("x \n {#- c -#} \n z") == "xz")
    }

    @Test func trailingNewlineAndLineEndings() throws {
        #expect(try render("x\n") == "x")
        #expect(try render("x\n\n") == "x\n")
        #expect(try render("a\r\nb\rc") == "a\nb\nc")
    }

    @Test func rawBlocks() throws {
        #expect(try render("{% raw %}{{ x }}{% if %}{% endraw %}") == "{{ x }}{% if %}")
    }
}

@Suite struct ExpressionTests {
    @Test func pythonNumberFormatting() throws {
        #expect(try render("{{ 1e16 }} {{ 1e15 }} {{ 0.0001 }} {{ 0.00001 }} {{ 1/3 }} {{ 0.1 + 0.2 }}")
            == "1e+16 1000000000000000.0 0.0001 1e-05 0.3333333333333333 0.30000000000000004")
        #expect(try render("{{ 10 / 5 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 1.5e300 * 1e10 }} {{ -0.0 }}")
            == "2.0 3 -4 2 1024 inf -0.0")
        #expect(try render("{{ [1.0, 2.5e-10, 1e22]|tojson }}") == "[1.0, 2.5e-10, 1e+22]")
        #expect(throws: EbbError.self) { try render("{{ 9223372036854775807 + 1 }}") }
    }

    @Test func reprOfContainers() throws {
        #expect(try render("{{ [1, 'a', none, true, (1,), {'k': \"it's\"}] }}") == #"[1, 'a', None, True, (1,), {'k': "it's"}]"#)
    }

    @Test func slicing() throws {
        let ctx: [String: JinjaValue] = ["l": [1, 2, 3, 4], "s": "héllo"]
        #expect(try render("{{ l[::-1] }}|{{ l[1:3] }}|{{ l[-2:] }}|{{ l[::2] }}|{{ s[::-1] }}|{{ s[1:] }}|{{ l[10:] }}", ctx)
            == "[4, 3, 2, 1]|[2, 3]|[3, 4]|[1, 3]|olléh|éllo|[]")
        #expect(throws: EbbError.self) { try render("{{ l[::0] }}", ctx) }
    }

    @Test func undefinedBehavesLikeJinjaDefaultUndefined() throws {
        let ctx: [String: JinjaValue] = ["d": ["a": 1], "n": nil]
        #expect(try render("[{{ missing }}]", ctx) == "[]")
        #expect(try render("[{{ d.b }}][{{ d['b'] }}][{{ n.x }}]", ctx) == "[][][]")
        #expect(try render("{{ missing is defined }}{{ d.b is defined }}{{ missing|length }}{{ missing|default('x') }}", ctx)
            == "FalseFalse0x")
        #expect(try render("{% for x in missing %}x{% else %}empty{% endfor %}", ctx) == "empty")
        // Using an undefined value beyond that is an error, as in Jinja.
        #expect(throws: EbbError.self) { try render("{{ missing.attr }}", ctx) }
        #expect(throws: EbbError.self) { try render("{{ d.b.c }}", ctx) }
        #expect(throws: EbbError.self) { try render("{{ missing + 1 }}", ctx) }
        #expect(throws: EbbError.self) { try render("{{ missing() }}", ctx) }
    }

    @Test func namespaceAndScoping() throws {
        let src = """
            {% set ns = namespace(total=0, seen=[]) %}{% set x = 'outer' %}
            {% for i in [1, 2, 3] %}{% set ns.total = ns.total + i %}{% set ns.seen = ns.seen + [i] %}{% set x = 'inner' %}{% endfor %}
            {{ ns.total }} {{ ns.seen }} {{ x }}
            """
        #expect(try render(src) == "6 [1, 2, 3] outer")
        #expect(throws: EbbError.self) { try render("{% set s = 'x' %}{% set s.attr = 1 %}") }
    }

    @Test func loopsAndLoopControls() throws {
        #expect(try render("{% for x in [1,2,3,4] if x != 2 %}{{ loop.index }}:{{ x }}{{ ',' if not loop.last }}{% endfor %}")
            == "1:1,2:3,3:4")
        #expect(try render("{% for x in range(10) %}{% if x is odd %}{% continue %}{% endif %}{% if x > 6 %}{% break %}{% endif %}{{ x }}{% endfor %}")
            == "0246")
        #expect(try render("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}") == "a=1;b=2;")
        #expect(try render("{% for x in [] %}x{% else %}none{% endfor %}") == "none")
        #expect(try render("{% for x in 'ab' %}{{ loop.revindex }}{{ loop.length }}{% endfor %}") == "2212")
    }

    @Test func macrosAndCallBlocks() throws {
        #expect(try render("{% macro m(a, b='B') %}{{ a }}{{ b }}{% endmacro %}{{ m(1) }}{{ m(2, b=3) }}") == "1B23")
        #expect(try render("{% macro w() %}<{{ caller() }}>{% endmacro %}{% call w() %}in{% endcall %}") == "<in>")
    }

    @Test func raiseExceptionCarriesMessage() throws {
        #expect(throws: EbbError(.template, "Only user and assistant roles are supported!")) {
            try render("{{ raise_exception('Only user and assistant roles are supported!') }}")
        }
    }

    @Test func stringMethods() throws {
        #expect(try render("{{ 'a<think>b</think>c'.split('</think>')[-1] }}|{{ 'x y  z'.split() }}|{{ 'a,b,c'.split(',', 1) }}|{{ 'a,b,c'.rsplit(',', 1) }}")
            == "c|['x', 'y', 'z']|['a', 'b,c']|['a,b', 'c']")
        #expect(try render("{{ '\\n\\nx\\n'.strip('\\n') }}|{{ '  x '.lstrip() }}|{{ 'Hello'.startswith('He') }}|{{ 'Hello'.endswith(('x', 'lo')) }}")
            == "x|x |True|True")
        #expect(try render("{{ 'Hi {}!'.format('you') }}|{{ 'hello world'.title() }}|{{ 'abc'.find('c') }}|{{ 'aXa'.replace('a', 'b') }}")
            == "Hi you!|Hello World|2|bXb")
    }

    @Test func toJSONMatchesPythonJSONDumps() throws {
        let ctx: [String: JinjaValue] = [
            "v": ["z": 1, "a": [true, nil, 1.5, "é\"\\\n\u{1}"], "e": .object([:])]
        ]
        #expect(try render("{{ v|tojson }}", ctx) == #"{"z": 1, "a": [true, null, 1.5, "é\"\\\n\u0001"], "e": {}}"#)
        #expect(try render("{{ v|tojson(indent=2) }}", ctx)
            == "{\n  \"z\": 1,\n  \"a\": [\n    true,\n    null,\n    1.5,\n    \"é\\\"\\\\\\n\\u0001\"\n  ],\n  \"e\": {}\n}")
        #expect(throws: EbbError.self) { try render("{{ missing|tojson }}") }
    }

    @Test func jsonValueRoundTrip() throws {
        let text = #"{"b": [1, 2.0, -3e-05, true, null], "a": {"x": "\u00e9\ud83d\ude00"}}"#
        let v = try JinjaValue(jsonString: text)
        #expect(v.jsonString() == #"{"b": [1, 2.0, -3e-05, true, null], "a": {"x": "é😀"}}"#)
        #expect(v.jsonString(sortKeys: true) == #"{"a": {"x": "é😀"}, "b": [1, 2.0, -3e-05, true, null]}"#)
        for bad in ["", "[", "{\"a\" 1}", "[1,]", "01", "\"\\x\"", "[1] x", "nul"] {
            #expect(throws: EbbError.self, "\(bad)") { try JinjaValue(jsonString: bad) }
        }
    }
}

@Suite struct LoadTimeErrorTests {
    @Test func unsupportedConstructsFailAtLoad() {
        expectLoadError("a\nb\n{% frobnicate %}", "unknown tag 'frobnicate'", line: 3)
        expectLoadError("{{ x }}\n{{ x|nosuchfilter }}", "unknown filter 'nosuchfilter'", line: 2)
        expectLoadError("\n{% if x is nosuchtest %}{% endif %}", "unknown test 'nosuchtest'", line: 2)
        // Even inside a branch that would never run.
        expectLoadError("{% if false %}\n\n{{ x|nosuchfilter }}{% endif %}", "nosuchfilter", line: 3)
        expectLoadError("{% include 'x.jinja' %}", "unsupported tag 'include'", line: 1)
        expectLoadError("{% extends 'x' %}", "unsupported tag", line: 1)
        expectLoadError("x\n{% if true %}", "unexpected end of template", line: 2)
        expectLoadError("{% for x in y %}\n{% endif %}", "unknown tag 'endif'", line: 2)
        expectLoadError("{% break %}", "outside of a loop", line: 1)
        expectLoadError("\n\n{{ 1 + }}", "unexpected", line: 3)
        expectLoadError("{{ 'unterminated }}", "unexpected character", line: 1)
        expectLoadError("{# never closed", "missing end of comment", line: 1)
        expectLoadError("{{ x ", "unexpected end of template", line: 1)
        expectLoadError("{{ (1 }}", "unexpected", line: 1)
        expectLoadError("{% for x in y recursive %}{% endfor %}", "recursive", line: 1)
    }

    @Test func nestingIsBounded() throws {
        for src in [
            "{{ " + String(repeating: "(", count: 5000) + "1" + String(repeating: ")", count: 5000) + " }}",
            "{{ " + String(repeating: "[", count: 5000) + " }}",
            "{{ " + String(repeating: "not ", count: 5000) + "x }}",
            "{{ " + String(repeating: "-", count: 5000) + "1 }}",
            "{{ " + Array(repeating: "a", count: 5000).joined(separator: " + ") + " }}",
            "{{ x" + String(repeating: ".a", count: 5000) + " }}",
            "{{ x" + String(repeating: "|upper", count: 5000) + " }}",
            String(repeating: "{% if x %}", count: 5000) + String(repeating: "{% endif %}", count: 5000),
            String(repeating: "{% for x in y %}", count: 5000),
        ] {
            #expect(throws: EbbError.self, "\(src.prefix(40))") { try JinjaTemplate(src) }
        }
        // Moderate nesting is fine.
        let ok = String(repeating: "(", count: 40) + "1" + String(repeating: ")", count: 40)
        #expect(try render("{{ \(ok) }}") == "1")
    }
}

@Suite struct BudgetTests {
    @Test func loopIterationBudget() {
        #expect(throws: EbbError.self) {
            try render(
                "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
                limits: .init(maxIterations: 10_000))
        }
    }

    @Test func outputAndStringSizeBudget() {
        let small = JinjaTemplate.Limits(maxOutputBytes: 1 << 20)
        #expect(throws: EbbError.self) { try render("{{ 'x' * 100000000 }}", limits: small) }
        #expect(throws: EbbError.self) {
            try render(
                "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
                limits: small)
        }
        #expect(throws: EbbError.self) {
            try render("{% for i in range(100000) %}0123456789abcdef{% endfor %}", limits: small)
        }
        #expect(throws: EbbError.self) { try render("{{ range(1000000)|length }}") }
    }

    @Test func deeplyNestedValuesAreRejected() {
        #expect(throws: EbbError.self) {
            try render(
                "{% set ns = namespace(x=[]) %}{% for i in range(100000) %}{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x|length }}")
        }
        #expect(throws: EbbError.self) { try render(String(repeating: "{% set x = [x] %}", count: 1000)) }
    }

    @Test func macroRecursionBudget() {
        #expect(throws: EbbError.self) { try render("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}") }
    }
}
