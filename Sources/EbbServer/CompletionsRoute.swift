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
        let id = job.requestId, model = modelName
        if options.stream {
            return streamResponse(job) { [self] event, state in
                var text = event.textDelta
                if options.echo && !state.echoed.contains(event.index) {
                    state.echoed.insert(event.index)
                    text = tokenizer.decode(job.prompts[event.promptIndex]) + text
                }
                var choice = CompletionChoice(index: event.index, text: text)
                if let n = options.logprobs {
                    var entries = event.logprobs.map { Optional($0) }
                    var promptIds = [Int]()
                    if options.echo && !state.echoedLogprobs.contains(event.index) {
                        state.echoedLogprobs.insert(event.index)
                        promptIds = job.prompts[event.promptIndex]
                        entries = (event.promptLogprobs ?? promptIds.map { _ in nil }) + entries
                    }
                    choice.logprobs = completionLogprobs(entries, promptIds: promptIds, topN: n, asIds: options.returnTokensAsTokenIds,
                                                         offset: &state.textOffsets[event.index, default: 0])
                }
                if let reason = event.finishReason {
                    choice.finishReason = reason.rawValue
                    choice.stopReason = stopReasonJSON(event.stopReason)
                }
                return Completion(id: id, created: created, model: model, choices: [choice])
            } usageChunk: { usage in
                options.includeUsage ? Completion(id: id, created: created, model: model, choices: [], usage: usage) : nil
            }
        }
        return try await respondWhenDone(channel) { [self] in
        let result = try await collect(job)
        var choices = [CompletionChoice]()
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
            var choice = CompletionChoice(index: c.index, text: text, logprobs: lp, finishReason: c.finishReason.rawValue,
                                          stopReason: stopReasonJSON(c.stopReason))
            if options.params.promptLogprobs != nil {
                choice.promptLogprobs = promptLogprobsJSON(c.promptLogprobs ?? [], prompt: job.prompts[c.promptIndex])
            }
            choices.append(choice)
        }
        return try JSONValueEncoder.encode(Completion(id: id, created: created, model: model, choices: choices, usage: result.usage))
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
