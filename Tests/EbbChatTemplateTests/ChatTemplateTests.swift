import EbbCore
import EbbJinja
import EbbTestSupport
import EbbTokenizer
import Foundation
import Testing

/// Byte-for-byte comparison (Swift's `==` on String uses canonical equivalence).
func sameBytes(_ a: String, _ b: String) -> Bool { Array(a.utf8) == Array(b.utf8) }

func jsonArray(_ text: String) throws -> [JinjaValue] {
    guard case .array(let a) = try JinjaValue(jsonString: text) else { throw EbbError(.internal, "expected a JSON array") }
    return a
}

let fixtureTemplateDirs = ["qwen3", "deepseek-v3", "deepseek-r1", "mixtral-instruct"]

@Suite struct FixtureRenderingTests {
    /// Every case of `renderings.json` renders byte for byte as transformers did, or throws
    /// the template's own error message.
    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"), arguments: fixtureTemplateDirs)
    func renderingsMatchTransformers(dir: String) throws {
        let url = Fixtures.url("chat_templates/\(dir)")
        let template = try ChatTemplate.load(directory: url)
        let data = try Data(contentsOf: url.appendingPathComponent("renderings.json"))
        guard case .array(let cases) = try JinjaValue(json: [UInt8](data)) else {
            Issue.record("renderings.json is not an array")
            return
        }
        #expect(!cases.isEmpty)
        for (i, c) in cases.enumerated() {
            guard case .array(let messages)? = c["messages"], case .bool(let agp)? = c["add_generation_prompt"] else {
                Issue.record("case \(i) lacks messages/add_generation_prompt")
                continue
            }
            let messagesJSON = Data(JinjaValue.array(messages).jsonString().utf8)
            if case .string(let expected)? = c["rendered"] {
                let got = try template.render(messages: messages, addGenerationPrompt: agp)
                #expect(sameBytes(got, expected), "\(dir) case \(i):\n\(got)\n---\n\(expected)")
                let viaJSON = try template.render(messagesJSON: messagesJSON, addGenerationPrompt: agp)
                #expect(sameBytes(viaJSON, expected), "\(dir) case \(i) via JSON")
            } else if case .string(let err)? = c["error"] {
                let wanted = err.hasPrefix("TemplateError: ") ? String(err.dropFirst("TemplateError: ".count)) : err
                for useJSON in [false, true] {
                    do {
                        _ =
                            useJSON
                            ? try template.render(messagesJSON: messagesJSON, addGenerationPrompt: agp)
                            : try template.render(messages: messages, addGenerationPrompt: agp)
                        Issue.record("\(dir) case \(i): expected an error containing \(wanted)")
                    } catch let e as EbbError {
                        #expect(e.code == .template)
                        #expect(e.message.contains(wanted), "\(e.message)")
                    }
                }
            } else {
                Issue.record("case \(i) has neither rendered nor error")
            }
        }
    }

    /// More conversations (tools, tool calls, reasoning, enable_thinking, bad role orders)
    /// through the fixture templates, checked against Python Jinja2's output.
    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"))
    func referenceConversations() throws {
        var templates: [String: ChatTemplate] = [:]
        for d in fixtureTemplateDirs { templates[d] = try ChatTemplate.load(directory: Fixtures.url("chat_templates/\(d)")) }
        let cases = try jsonArray(ReferenceCases.conversations)
        #expect(cases.count > 100)
        for (i, c) in cases.enumerated() {
            guard case .string(let dir)? = c["dir"], let template = templates[dir],
                case .array(let messages)? = c["messages"], case .bool(let agp)? = c["add_generation_prompt"]
            else {
                Issue.record("bad reference case \(i)")
                continue
            }
            var tools: [JinjaValue]? = nil
            if case .array(let t)? = c["tools"] { tools = t }
            var extra: [String: JinjaValue] = [:]
            if let t = c["enable_thinking"] { extra["enable_thinking"] = t }
            let render = { try template.render(messages: messages, addGenerationPrompt: agp, tools: tools, extraContext: extra) }
            if case .string(let expected)? = c["expected"] {
                let got = try render()
                #expect(sameBytes(got, expected), "\(dir) case \(i):\n\(got)\n---\n\(expected)")
            } else if case .string(let raised)? = c["raises"] {
                #expect(throws: EbbError(.template, raised)) { try render() }
            } else {
                #expect(throws: EbbError.self, "\(dir) case \(i)") { try render() }
            }
        }
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"))
    func specialTokensFromConfig() throws {
        let v3 = try ChatTemplate.load(directory: Fixtures.url("chat_templates/deepseek-v3"))
        #expect(v3.specialTokens["bos_token"] == .string("<｜begin▁of▁sentence｜>"))
        #expect(v3.specialTokens["unk_token"] == nil)  // null in the config: left undefined
        let qwen = try ChatTemplate.load(directory: Fixtures.url("chat_templates/qwen3"))
        #expect(qwen.specialTokens["bos_token"] == nil)
        #expect(qwen.specialTokens["eos_token"] == .string("<|im_end|>"))
    }
}

@Suite struct ChatTemplateLoadingTests {
    func tempDir(_ files: [String: String]) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ebb-chat-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for (name, text) in files {
            try Data(text.utf8).write(to: dir.appendingPathComponent(name))
        }
        return dir
    }

    @Test func jinjaFileWinsOverConfig() throws {
        let dir = try tempDir([
            "tokenizer_config.json": #"{"bos_token": {"content": "<B>", "lstrip": false}, "chat_template": "config"}"#,
            "chat_template.jinja": "{{ bos_token }}file{% for m in messages %}[{{ m.content }}]{% endfor %}\n",
        ])
        defer { try? FileManager.default.removeItem(at: dir) }
        let t = try ChatTemplate.load(directory: dir)
        let messages: [[String: JinjaValue]] = [["role": "user", "content": "x"]]
        let out = try t.render(messages: messages, addGenerationPrompt: false)
        #expect(out == "<B>file[x]")
    }

    @Test func namedTemplateList() throws {
        let dir = try tempDir([
            "tokenizer_config.json": #"""
            {"eos_token": "</s>", "chat_template": [
              {"name": "default", "template": "D{{ eos_token }}"},
              {"name": "tool_use", "template": "T{{ tools|length }}"}]}
            """#
        ])
        defer { try? FileManager.default.removeItem(at: dir) }
        let t = try ChatTemplate.load(directory: dir)
        #expect(try t.render(messages: [JinjaValue](), addGenerationPrompt: true) == "D</s>")
        #expect(try t.render(messages: [JinjaValue](), addGenerationPrompt: true, tools: [["type": "function"]]) == "T1")
        let named = try ChatTemplate.load(directory: dir, name: "tool_use")
        #expect(try named.render(messages: [JinjaValue](), addGenerationPrompt: true, tools: []) == "T0")
        #expect(throws: EbbError.self) { try ChatTemplate.load(directory: dir, name: "nope") }
    }

    @Test func missingTemplateIsAnError() throws {
        let dir = try tempDir(["tokenizer_config.json": #"{"eos_token": "</s>"}"#])
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(throws: EbbError.self) { try ChatTemplate.load(directory: dir) }
    }

    @Test func badTemplateFailsAtLoadWithLineNumber() throws {
        let dir = try tempDir(["chat_template.jinja": "ok\n{% for m in messages %}\n{{ m|frobnicate }}\n{% endfor %}"])
        defer { try? FileManager.default.removeItem(at: dir) }
        do {
            _ = try ChatTemplate.load(directory: dir)
            Issue.record("expected a load error")
        } catch let e as EbbError {
            #expect(e.code == .template)
            #expect(e.message.contains("line 3"))
            #expect(e.message.contains("frobnicate"))
        }
    }

    @Test func messagesJSONKeepsKeyOrderForToJSON() throws {
        let t = try ChatTemplate(source: "{% for m in messages %}{{ m|tojson }}{% endfor %}|{{ tools|tojson }}")
        let messages = #"[{"role": "user", "content": null, "z": 1.0, "a": [true, 2, "é\n"]}]"#
        let tools = #"[{"type": "function", "function": {"name": "f", "parameters": {"b": 1, "a": 2.5e-7}}}]"#
        let out = try t.render(messagesJSON: Data(messages.utf8), addGenerationPrompt: false, toolsJSON: Data(tools.utf8))
        #expect(
            out
                == #"{"role": "user", "content": null, "z": 1.0, "a": [true, 2, "é\n"]}|[{"type": "function", "function": {"name": "f", "parameters": {"b": 1, "a": 2.5e-07}}}]"#
        )
        #expect(throws: EbbError.self) { try t.render(messagesJSON: Data("{".utf8), addGenerationPrompt: false) }
        #expect(throws: EbbError.self) { try t.render(messagesJSON: Data("{}".utf8), addGenerationPrompt: false) }
    }

    @Test func extraContextAndDefaults() throws {
        let t = try ChatTemplate(
            source: "{{ tools is none }}/{{ documents is none }}/{{ add_generation_prompt }}/{{ enable_thinking|default('unset') }}",
            specialTokens: ["eos_token": "</s>"])
        #expect(try t.render(messages: [JinjaValue](), addGenerationPrompt: true) == "True/True/True/unset")
        #expect(
            try t.render(messages: [JinjaValue](), addGenerationPrompt: false, extraContext: ["enable_thinking": false])
                == "True/True/False/False")
    }

    @Test func continueFinalMessage() throws {
        let t = try ChatTemplate(
            source: "{% for m in messages %}<{{ m.role }}>{{ m.content | trim }}</{{ m.role }}>\n{% endfor %}")
        let messages: [JinjaValue] = [
            ["role": "user", "content": "Hi"], ["role": "assistant", "content": "The answer is  "],
        ]
        let out = try t.render(messages: messages, addGenerationPrompt: false, continueFinalMessage: true)
        #expect(out == "<user>Hi</user>\n<assistant>The answer is")
        #expect(throws: EbbError.self) {
            try t.render(messages: messages, addGenerationPrompt: true, continueFinalMessage: true)
        }
    }
}
