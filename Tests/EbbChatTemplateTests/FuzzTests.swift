import EbbCore
import EbbJinja
import EbbTestSupport
import Foundation
import Testing

/// SplitMix64: a small seeded generator so failures reproduce.
struct SeededRNG: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite struct FuzzTests {
    static let fragments = [
        "{%", "%}", "{{", "}}", "{#", "#}", "-", "+", "(", ")", "[", "]", "{", "}", "'", "\"", "\\", "if ", "endif",
        "for ", "endfor", " in ", "else", "elif ", "set ", "=", " ", "\n", "|", ".", "not ", " is ", "and", "or",
        "{% raw %}", "{% endraw %}", "0x", "1e", "é", "\u{0}", ":", ",", "::-1", "loop.", "namespace(", "macro ",
        "endmacro", "%", "~", "**", "//", "tojson", "length", "defined", "none", "break", "continue", "caller()",
    ]

    func corpus() -> [String] {
        var sources: [String] = []
        if let cases = try? jsonArray(ReferenceCases.snippets) {
            for c in cases { if case .string(let s)? = c["template"] { sources.append(s) } }
        }
        if Fixtures.exist {
            for d in fixtureTemplateDirs {
                let dir = Fixtures.url("chat_templates/\(d)")
                if let s = try? String(contentsOf: dir.appendingPathComponent("chat_template.jinja"), encoding: .utf8) {
                    sources.append(s)
                } else if let data = try? Data(contentsOf: dir.appendingPathComponent("tokenizer_config.json")),
                    case .string(let s)? = try? JinjaValue(json: [UInt8](data))["chat_template"]
                {
                    sources.append(s)
                }
            }
        }
        return sources
    }

    func mutate(_ src: String, _ rng: inout SeededRNG) -> String {
        var sc = Array(src.unicodeScalars)
        for _ in 0..<Int.random(in: 1...4, using: &rng) {
            let at = sc.isEmpty ? 0 : Int.random(in: 0...sc.count, using: &rng)
            switch Int.random(in: 0..<5, using: &rng) {
            case 0:  // truncate
                sc = Array(sc[0..<at])
            case 1:  // delete a range
                let end = Swift.min(sc.count, at + Int.random(in: 1...12, using: &rng))
                if at < end { sc.removeSubrange(at..<end) }
            case 2:  // insert a fragment
                sc.insert(contentsOf: Self.fragments.randomElement(using: &rng)!.unicodeScalars, at: at)
            case 3:  // duplicate a chunk
                let end = Swift.min(sc.count, at + Int.random(in: 1...40, using: &rng))
                if at < end { sc.insert(contentsOf: Array(sc[at..<end]), at: at) }
            default:  // random scalar
                sc.insert(Unicode.Scalar(UInt8.random(in: 0...127, using: &rng)), at: at)
            }
        }
        var v = String.UnicodeScalarView()
        v.append(contentsOf: sc)
        return String(v)
    }

    /// Garbled and truncated templates either load or throw `EbbError`; those that load
    /// render or throw `EbbError`. Nothing traps.
    @Test func garbledTemplatesNeverCrash() throws {
        let sources = corpus()
        #expect(!sources.isEmpty)
        let ctx: [String: JinjaValue] = [
            "messages": [
                ["role": "system", "content": "s"], ["role": "user", "content": "u"],
                ["role": "assistant", "content": nil, "tool_calls": [["type": "function", "function": ["name": "f", "arguments": "{}"]]]],
                ["role": "tool", "content": "r"], ["role": "assistant", "content": "<think>t</think>a"],
            ],
            "add_generation_prompt": true, "bos_token": "<s>", "eos_token": "</s>", "tools": [["type": "function"]],
            "l": [3, 1, 2], "d": ["a": 1], "s": "Hello", "n": nil, "i": 7, "f": 1.5,
        ]
        let limits = JinjaTemplate.Limits(maxOutputBytes: 1 << 20, maxIterations: 20_000, maxCallDepth: 20)
        var rng = SeededRNG(state: 0xEBB_5EED)
        var loaded = 0
        var rendered = 0
        for iteration in 0..<3000 {
            let base = sources[iteration % sources.count]
            let src = mutate(base, &rng)
            let template: JinjaTemplate
            do {
                template = try JinjaTemplate(src, limits: limits)
            } catch is EbbError {
                continue
            }
            loaded += 1
            do {
                _ = try template.render(ctx)
                rendered += 1
            } catch is EbbError {}
        }
        // The mutations are mild enough that a fair share still loads and renders.
        #expect(loaded > 300)
        #expect(rendered > 100)
    }

    @Test func randomBytesNeverCrash() {
        var rng = SeededRNG(state: 42)
        let alphabet = Array("{}%#-+()[]'\"\\|.:,=~*/ \nabcif01".unicodeScalars)
        for _ in 0..<3000 {
            var v = String.UnicodeScalarView()
            for _ in 0..<Int.random(in: 0...60, using: &rng) { v.append(alphabet.randomElement(using: &rng)!) }
            if let t = try? JinjaTemplate(String(v), limits: .init(maxOutputBytes: 1 << 16, maxIterations: 1000)) {
                _ = try? t.render(["a": 1])
            }
        }
    }
}
