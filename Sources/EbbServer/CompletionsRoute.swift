import EbbCore
import EbbEngine
import EbbSampling
import Foundation
import Hummingbird
import NIOCore

extension OpenAIServer {
    /// `POST /v1/completions`.
    func completions(_ body: JSONValue, channel: any Channel) async throws -> Response {
        let r = try BodyReader(body)
        let options = try GenerationOptions.parse(r, chat: false)
        try checkModel(options)
        let prompts = try PromptInput.parse(r).map { prompt throws(APIError) in try promptIds(prompt) }
        for p in prompts { try checkLength(p, options) }
        try validateParams(options)
        let job = GenerationJob(requestId: Self.newId("cmpl"), prompts: prompts, options: options,
                                eosTokenIds: eosTokenIds, arrivalTime: Date().timeIntervalSince1970)
        let created = Int(Date().timeIntervalSince1970)
        let header: [String: JSONValue] = ["id": .string(job.requestId), "object": .string("text_completion"),
                                           "created": .int(created), "model": .string(modelName)]
        if options.stream {
            return streamResponse(job) { [self] event, state in
                var choice: [String: JSONValue] = ["index": .int(event.index), "text": .string(""),
                                                   "logprobs": .null, "finish_reason": .null, "stop_reason": .null]
                var text = event.textDelta
                if options.echo && !state.echoed.contains(event.index) {
                    state.echoed.insert(event.index)
                    text = tokenizer.decode(job.prompts[event.promptIndex]) + text
                }
                choice["text"] = .string(text)
                if let n = options.logprobs {
                    var entries = event.logprobs.map { Optional($0) }
                    var promptIds = [Int]()
                    if options.echo && !state.echoedLogprobs.contains(event.index) {
                        state.echoedLogprobs.insert(event.index)
                        promptIds = job.prompts[event.promptIndex]
                        entries = (event.promptLogprobs ?? promptIds.map { _ in nil }) + entries
                    }
                    choice["logprobs"] = completionLogprobs(entries, promptIds: promptIds, topN: n, asIds: options.returnTokensAsTokenIds,
                                                            offset: &state.textOffsets[event.index, default: 0])
                }
                if let reason = event.finishReason {
                    choice["finish_reason"] = .string(reason.rawValue)
                    choice["stop_reason"] = stopReasonJSON(event.stopReason)
                }
                var chunk = header
                chunk["choices"] = .array([.object(choice)])
                return chunk
            } usageChunk: { usage in
                var chunk = header
                chunk["choices"] = .array([])
                chunk["usage"] = usage
                return options.includeUsage ? chunk : nil
            }
        }
        return try await respondWhenDone(channel) { [self] in
        let result = try await collect(job)
        var choices = [JSONValue]()
        for c in result.choices {
            var text = c.text
            var lp: JSONValue = .null
            if let n = options.logprobs {
                var offset = 0
                var entries = [TokenLogprobs?]()
                if options.echo {
                    entries += c.promptLogprobs ?? job.prompts[c.promptIndex].map { _ in nil }
                }
                entries += c.logprobs.map { Optional($0) }
                lp = completionLogprobs(entries, promptIds: options.echo ? job.prompts[c.promptIndex] : [], topN: n,
                                        asIds: options.returnTokensAsTokenIds, offset: &offset)
            }
            if options.echo { text = tokenizer.decode(job.prompts[c.promptIndex]) + text }
            var choice: [String: JSONValue] = ["index": .int(c.index), "text": .string(text), "logprobs": lp,
                                               "finish_reason": .string(c.finishReason.rawValue),
                                               "stop_reason": stopReasonJSON(c.stopReason)]
            if options.params.promptLogprobs != nil {
                choice["prompt_logprobs"] = promptLogprobsJSON(c.promptLogprobs ?? [], prompt: job.prompts[c.promptIndex])
            }
            choices.append(.object(choice))
        }
        var response = header
        response["choices"] = .array(choices)
        response["usage"] = result.usage
        return JSONValue.object(response)
        }
    }

    /// vLLM's `prompt_logprobs`: null for the first token, then for each prompt token a map
    /// from token id to `{logprob, rank, decoded_token}` holding the token and the top-N.
    func promptLogprobsJSON(_ entries: [TokenLogprobs?], prompt: [Int]) -> JSONValue {
        .array(prompt.indices.map { i in
            guard i < entries.count, let e = entries[i] else { return .null }
            var map: [String: JSONValue] = [:]
            for (rank, t) in e.top.enumerated() {
                map[String(t.tokenId)] = .object(["logprob": .float(max(t.logprob, -9999)), "rank": .int(rank + 1),
                                                  "decoded_token": .string(tokenizer.decode([t.tokenId]))])
            }
            map[String(e.tokenId)] = .object(["logprob": .float(max(e.logprob, -9999)), "rank": .int(e.rank),
                                              "decoded_token": .string(tokenizer.decode([e.tokenId]))])
            return .object(map)
        })
    }

    func stopReasonJSON(_ reason: StopReason?) -> JSONValue {
        switch reason {
        case .string(let s)?: return .string(s)
        case .tokenId(let id)?: return .int(id)
        default: return .null
        }
    }

    /// The legacy completions logprobs object for generated tokens.
    func completionLogprobs(_ entries: [TokenLogprobs], topN: Int, asIds: Bool, offset: inout Int) -> JSONValue {
        completionLogprobs(entries.map { Optional($0) }, promptIds: [], topN: topN, asIds: asIds, offset: &offset)
    }

    /// Entries may be nil for prompt positions that have no logprob (the first token);
    /// `promptIds` names the tokens of those leading entries.
    func completionLogprobs(_ entries: [TokenLogprobs?], promptIds: [Int], topN: Int, asIds: Bool, offset: inout Int) -> JSONValue {
        var tokens = [JSONValue](), logprobs = [JSONValue](), tops = [JSONValue](), offsets = [JSONValue]()
        for (i, entry) in entries.enumerated() {
            let id = entry?.tokenId ?? (i < promptIds.count ? promptIds[i] : 0)
            let text = tokenText(id, asIds: asIds)
            tokens.append(.string(text))
            offsets.append(.int(offset))
            offset += text.unicodeScalars.count
            guard let entry else {
                logprobs.append(.null)
                tops.append(.null)
                continue
            }
            logprobs.append(.float(entry.logprob))
            // Most likely first (vLLM also lists the chosen token when it is not in the top-N).
            var keys = [String](), top = [String: JSONValue]()
            for t in entry.top.prefix(topN) {
                let key = tokenText(t.tokenId, asIds: asIds)
                if top[key] == nil { keys.append(key) }
                top[key] = .float(t.logprob)
            }
            if topN > 0 && top[text] == nil {
                keys.append(text)
                top[text] = .float(entry.logprob)
            }
            tops.append(.orderedObject(keys: keys, values: top))
        }
        return .object(["tokens": .array(tokens), "token_logprobs": .array(logprobs), "top_logprobs": .array(tops),
                        "text_offset": .array(offsets)])
    }
}
