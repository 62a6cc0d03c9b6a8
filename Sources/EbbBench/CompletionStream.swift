import EbbCore
import Foundation

/// Follows the server-sent events of one streamed OpenAI completion and times its tokens.
///
/// A *content chunk* is a `data:` JSON object with a choice that carries a token: text
/// that is not empty (`choices[i].text`, or `choices[i].delta.content` for chat-style
/// streams), non-empty `token_ids`, or — in a completion stream — a `text` field with no
/// `finish_reason` yet (a token whose text the server's detokenizer still holds back). A
/// chunk that only ends the choice (empty text with a finish reason) or only carries
/// `usage` is not a token. TTFT is the time of the first content chunk, ITL the gaps between
/// successive ones. `data: [DONE]` ends the stream; an `error` object fails it.
public struct CompletionStreamTimer: Sendable {
    public private(set) var firstContentTime: Double?
    public private(set) var lastContentTime: Double?
    public private(set) var itl: [Double] = []
    public private(set) var contentChunks = 0
    public private(set) var usageCompletionTokens: Int?
    public private(set) var done = false
    public private(set) var error: String?
    public private(set) var text = ""

    public init() {}

    /// Consumes one event that arrived `time` seconds after the request was sent.
    public mutating func consume(_ event: SSEEvent, at time: Double) {
        guard !done, error == nil else { return }
        let payload = event.data.trimmingCharacters(in: .whitespaces)
        if payload == "[DONE]" {
            done = true
            return
        }
        if payload.isEmpty { return }
        let json: JSONValue
        do {
            json = try JSONValue.parse(Data(payload.utf8))
        } catch {
            self.error = "malformed stream chunk: \(Self.clip(payload))"
            return
        }
        guard let object = json.objectValue else {
            self.error = "stream chunk is \(json.kindDescription), not an object"
            return
        }
        if let e = object["error"], !e.isNull {
            self.error = "server error in stream: \(Self.errorMessage(e))"
            return
        }
        if object["object"]?.stringValue == "error" {
            self.error = "server error in stream: \(Self.errorMessage(json))"
            return
        }
        if let tokens = object["usage"]?["completion_tokens"]?.intValue {
            usageCompletionTokens = tokens
        }
        var isContent = false
        for choice in object["choices"]?.arrayValue ?? [] {
            let finished = !(choice["finish_reason"]?.isNull ?? true)
            if let t = choice["text"]?.stringValue {
                text += t
                if !t.isEmpty || !finished { isContent = true }
            } else if let t = choice["delta"]?["content"]?.stringValue, !t.isEmpty {
                text += t
                isContent = true
            }
            if let ids = choice["token_ids"]?.arrayValue, !ids.isEmpty { isContent = true }
        }
        guard isContent else { return }
        contentChunks += 1
        if let last = lastContentTime {
            itl.append(time - last)
        } else {
            firstContentTime = time
        }
        lastContentTime = time
    }

    /// The result once the body has ended `latency` seconds after the request was sent.
    /// A stream without `[DONE]`, or without any token, failed.
    public func result(promptTokens: Int, latency: Double) -> RequestResult {
        if let error {
            return .failure(promptTokens: promptTokens, latency: latency, error: error)
        }
        guard done else {
            return .failure(promptTokens: promptTokens, latency: latency, error: "stream ended without data: [DONE]")
        }
        guard let first = firstContentTime else {
            return .failure(promptTokens: promptTokens, latency: latency, error: "stream carried no tokens")
        }
        return RequestResult(success: true, promptTokens: promptTokens,
                             outputTokens: usageCompletionTokens ?? contentChunks,
                             ttft: first, itl: itl, latency: latency, error: nil)
    }

    static func errorMessage(_ e: JSONValue) -> String {
        if let s = e.stringValue { return clip(s) }
        if let m = e["message"]?.stringValue { return clip(m) }
        return e.kindDescription
    }

    static func clip(_ s: String, _ limit: Int = 200) -> String {
        s.count <= limit ? s : String(s.prefix(limit)) + "…"
    }
}
