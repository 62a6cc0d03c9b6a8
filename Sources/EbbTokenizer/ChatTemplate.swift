import EbbCore
import EbbJinja
import Foundation

/// A model's chat template, rendered the way transformers' `apply_chat_template(...,
/// tokenize=False)` does: the template sees `messages`, `tools`, `documents`,
/// `add_generation_prompt`, the tokenizer's special tokens (`bos_token`, `eos_token`, …)
/// and any extra variables (e.g. `enable_thinking`).
public struct ChatTemplate: Sendable {
    /// The template used when no other is selected.
    public let template: JinjaTemplate
    /// A template named `tool_use` (from a list-valued `chat_template`), used when tools are given.
    public let toolUseTemplate: JinjaTemplate?
    /// Special tokens passed to the template as variables (`bos_token` → text, …).
    public let specialTokens: [String: JinjaValue]

    public var source: String { template.source }

    public init(source: String, specialTokens: [String: String] = [:], toolUseSource: String? = nil) throws {
        var tokens: [String: JinjaValue] = [:]
        for (k, v) in specialTokens { tokens[k] = .string(v) }
        try self.init(source: source, specialTokenValues: tokens, toolUseSource: toolUseSource)
    }

    init(source: String, specialTokenValues: [String: JinjaValue], toolUseSource: String?) throws {
        self.template = try JinjaTemplate(source)
        self.toolUseTemplate = try toolUseSource.map { try JinjaTemplate($0) }
        self.specialTokens = specialTokenValues
    }

    static let specialTokenKeys = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"]

    /// Loads the template of a Hugging Face model directory: `chat_template.jinja` when
    /// present, else `tokenizer_config.json`'s `chat_template` (a string, or a list of
    /// `{name, template}` from which `name` — default `"default"` — is taken), else
    /// `chat_template.json`. Special tokens come from `tokenizer_config.json` (a string or
    /// an `{"content": …}` object each; null ones are left undefined, as transformers does).
    public static func load(directory: URL, name: String? = nil) throws -> ChatTemplate {
        let fm = FileManager.default
        let configURL = directory.appendingPathComponent("tokenizer_config.json")
        var config = JinjaObject()
        if fm.fileExists(atPath: configURL.path) {
            let parsed = try readJSON(configURL)
            guard case .object(let o) = parsed else {
                throw EbbError(.invalidConfig, "\(configURL.path): expected a JSON object")
            }
            config = o
        }

        var tokens: [String: JinjaValue] = [:]
        for key in specialTokenKeys {
            switch config[key] {
            case .string(let s)?: tokens[key] = .string(s)
            case .object(let o)?:
                if case .string(let s)? = o["content"] { tokens[key] = .string(s) }
            default: break
            }
        }
        if case .array(let extra)? = config["additional_special_tokens"] {
            let names: [JinjaValue] = extra.compactMap { v in
                if case .string = v { return v }
                if case .object(let o) = v, case .string(let s)? = o["content"] { return .string(s) }
                return nil
            }
            tokens["additional_special_tokens"] = .array(names)
        }

        let jinjaURL = directory.appendingPathComponent("chat_template.jinja")
        if fm.fileExists(atPath: jinjaURL.path) {
            return try ChatTemplate(
                source: readText(jinjaURL), specialTokenValues: tokens, toolUseSource: nil, origin: jinjaURL.path)
        }
        var templateValue = config["chat_template"]
        var origin = configURL.path
        if templateValue == nil || templateValue == .null {
            let jsonURL = directory.appendingPathComponent("chat_template.json")
            if fm.fileExists(atPath: jsonURL.path), case .object(let o) = try readJSON(jsonURL) {
                templateValue = o["chat_template"]
                origin = jsonURL.path
            }
        }
        switch templateValue {
        case .string(let s)?:
            return try ChatTemplate(source: s, specialTokenValues: tokens, toolUseSource: nil, origin: origin)
        case .array(let list)?:
            var named: [String: String] = [:]
            for item in list {
                if case .string(let n)? = item["name"], case .string(let t)? = item["template"] { named[n] = t }
            }
            let wanted = name ?? "default"
            guard let main = named[wanted] else {
                throw EbbError(
                    .template,
                    "\(origin): no chat template named '\(wanted)' (have: \(named.keys.sorted().joined(separator: ", ")))")
            }
            return try ChatTemplate(
                source: main, specialTokenValues: tokens, toolUseSource: name == nil ? named["tool_use"] : nil,
                origin: origin)
        default:
            throw EbbError(.template, "no chat template in \(directory.path) (looked for chat_template.jinja, tokenizer_config.json's chat_template, chat_template.json)")
        }
    }

    private init(source: String, specialTokenValues: [String: JinjaValue], toolUseSource: String?, origin: String) throws {
        do {
            try self.init(source: source, specialTokenValues: specialTokenValues, toolUseSource: toolUseSource)
        } catch let e as EbbError {
            throw EbbError(e.code, "\(origin): \(e.message)")
        }
    }

    private static func readText(_ url: URL) throws -> String {
        do {
            let data = try Data(contentsOf: url)
            return String(decoding: data, as: UTF8.self)
        } catch {
            throw EbbError(.io, "cannot read \(url.path): \(error.localizedDescription)")
        }
    }

    private static func readJSON(_ url: URL) throws -> JinjaValue {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw EbbError(.io, "cannot read \(url.path): \(error.localizedDescription)")
        }
        do { return try JinjaValue(json: [UInt8](data)) } catch let e as EbbError {
            throw EbbError(.invalidConfig, "\(url.path): \(e.message)")
        }
    }

    // MARK: rendering

    /// Renders a conversation. `messages` are OpenAI-style message objects; `tools` are
    /// passed to the template as `tools` (None when nil); `extraContext` adds or overrides
    /// variables such as `enable_thinking`. With `continueFinalMessage`, the output ends
    /// right after the last message's content so that generation continues it (transformers'
    /// `continue_final_message`).
    public func render(
        messages: [JinjaValue], addGenerationPrompt: Bool, tools: [JinjaValue]? = nil,
        documents: [JinjaValue]? = nil, continueFinalMessage: Bool = false,
        extraContext: [String: JinjaValue] = [:]
    ) throws -> String {
        if continueFinalMessage && addGenerationPrompt {
            throw EbbError(
                .invalidArgument,
                "continue_final_message and add_generation_prompt are not compatible: use continue_final_message to continue the final message, or add_generation_prompt to start a new assistant turn")
        }
        var ctx = specialTokens
        ctx["messages"] = .array(messages)
        ctx["tools"] = tools.map { .array($0) } ?? .null
        ctx["documents"] = documents.map { .array($0) } ?? .null
        ctx["add_generation_prompt"] = .bool(addGenerationPrompt)
        for (k, v) in extraContext { ctx[k] = v }
        let chosen = (tools?.isEmpty == false ? toolUseTemplate : nil) ?? template
        let rendered = try chosen.render(ctx)
        if continueFinalMessage { return try Self.truncateAfterFinalMessage(rendered, messages) }
        return rendered
    }

    public func render(
        messages: [[String: JinjaValue]], addGenerationPrompt: Bool, tools: [JinjaValue]? = nil,
        extraContext: [String: JinjaValue] = [:]
    ) throws -> String {
        try render(
            messages: messages.map { m in .object(JinjaObject(m.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })) },
            addGenerationPrompt: addGenerationPrompt, tools: tools, extraContext: extraContext)
    }

    /// Renders from JSON: `messagesJSON` is an array of message objects (key order kept,
    /// content may be a string, null or a list of parts); `toolsJSON`, when given, an
    /// array of tool definitions.
    public func render(
        messagesJSON: Data, addGenerationPrompt: Bool, toolsJSON: Data? = nil, continueFinalMessage: Bool = false,
        extraContext: [String: JinjaValue] = [:]
    ) throws -> String {
        guard case .array(let messages) = try JinjaValue(json: [UInt8](messagesJSON)) else {
            throw EbbError(.invalidArgument, "messages must be a JSON array")
        }
        var tools: [JinjaValue]? = nil
        if let toolsJSON {
            switch try JinjaValue(json: [UInt8](toolsJSON)) {
            case .array(let t): tools = t
            case .null: tools = nil
            default: throw EbbError(.invalidArgument, "tools must be a JSON array")
            }
        }
        return try render(
            messages: messages, addGenerationPrompt: addGenerationPrompt, tools: tools,
            continueFinalMessage: continueFinalMessage, extraContext: extraContext)
    }

    static func truncateAfterFinalMessage(_ rendered: String, _ messages: [JinjaValue]) throws -> String {
        guard let last = messages.last else {
            throw EbbError(.invalidArgument, "continue_final_message needs at least one message")
        }
        var finalText: String? = nil
        switch last["content"] {
        case .string(let s)?: finalText = s
        case .array(let parts)?:
            for part in parts.reversed() {
                if case .string(let t)? = part["text"] { finalText = t; break }
            }
        default: break
        }
        guard let final = finalText else {
            throw EbbError(.invalidArgument, "continue_final_message is set but the final message has no text to continue")
        }
        let r = Array(rendered.unicodeScalars)
        let f = Array(final.unicodeScalars)
        func isSpace(_ u: Unicode.Scalar) -> Bool {
            switch u.value {
            case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0: return true
            default: return u.value > 0x7F && u.properties.isWhitespace
            }
        }
        var a = 0
        var b = f.count
        while a < b, isSpace(f[a]) { a += 1 }
        while b > a, isSpace(f[b - 1]) { b -= 1 }
        let stripped = Array(f[a..<b])
        let lstrippedCount = f.count - a
        // rindex of the stripped text
        var loc: Int? = nil
        if stripped.count <= r.count {
            var i = r.count - stripped.count
            while i >= 0 {
                if r[i..<(i + stripped.count)].elementsEqual(stripped) { loc = i; break }
                i -= 1
            }
        }
        guard let loc else {
            throw EbbError(
                .invalidArgument,
                "continue_final_message is set but the final message does not appear in the chat after applying the chat template")
        }
        var end = loc + stripped.count
        if loc + lstrippedCount <= r.count, r[loc..<(loc + lstrippedCount)].elementsEqual(f) { end = loc + lstrippedCount }
        var out = String.UnicodeScalarView()
        out.append(contentsOf: r[0..<end])
        return String(out)
    }
}

extension JinjaValue {
    /// Converts EbbCore's `JSONValue` (whose objects are unordered and numbers all
    /// doubles): whole numbers become integers and object keys are sorted. Prefer
    /// `JinjaValue(json:)` on the raw bytes when key order matters (e.g. `tojson` of tools).
    public init(_ json: JSONValue) {
        switch json {
        case .null: self = .null
        case .bool(let b): self = .bool(b)
        case .number(let d):
            if d == d.rounded(), Swift.abs(d) < 9.0e15 { self = .int(Int(d)) } else { self = .double(d) }
        case .string(let s): self = .string(s)
        case .array(let a): self = .array(a.map(JinjaValue.init))
        case .object(let o):
            self = .object(JinjaObject(o.keys.sorted().compactMap { k in o[k].map { (k, JinjaValue($0)) } }))
        case .orderedObject(let keys, let o):
            self = .object(JinjaObject(keys.compactMap { k in o[k].map { (k, JinjaValue($0)) } }))
        }
    }
}
