import EbbCore
import EbbEngine
import EbbSampling
import EbbTokenizer
import Foundation

/// A piece of one choice's progress, as the HTTP layer streams or collects it.
struct ChoiceEvent: Sendable {
    var index: Int
    var promptIndex: Int
    var textDelta: String
    var tokenIds: [Int]
    var logprobs: [TokenLogprobs]
    var promptLogprobs: [TokenLogprobs?]?
    var finishReason: FinishReason?
    var stopReason: StopReason?
}

/// What one generation request asks the engine for.
struct GenerationJob: Sendable {
    var requestId: String
    var prompts: [[Int]]
    var options: GenerationOptions
    var eosTokenIds: [Int]
    var arrivalTime: Double
}

/// Follows one choice: detokenizes incrementally, matches stop strings on the text (and
/// then aborts the engine request), and holds back text that could still become a stop
/// string.
struct ChoiceTracker {
    let index: Int
    let promptIndex: Int
    let promptLength: Int
    var detokenizer: IncrementalDetokenizer
    let checker: StopChecker
    let params: SamplingParams
    var text = ""
    var sentScalars = 0
    var numTokens = 0
    var finishReason: FinishReason?
    var stopReason: StopReason?

    init(index: Int, promptIndex: Int, promptLength: Int, tokenizer: Tokenizer, params: SamplingParams, eos: [Int], maxModelLen: Int) {
        self.index = index
        self.promptIndex = promptIndex
        self.promptLength = promptLength
        self.params = params
        detokenizer = IncrementalDetokenizer(tokenizer: tokenizer, skipSpecialTokens: params.skipSpecialTokens)
        checker = StopChecker(params: params, eosTokenIds: eos, maxModelLen: maxModelLen)
    }

    /// Applies one engine output; returns the event to emit and whether the engine
    /// request must be aborted (a stop string ended it).
    mutating func apply(_ out: RequestOutput) -> (event: ChoiceEvent, abort: Bool) {
        var abort = false
        for token in out.newTokenIds where finishReason == nil {
            numTokens += 1
            let stopsByToken = out.finishReason == .stop &&
                (checker.eosTokenIds.contains(token) || params.stopTokenIds.contains(token))
            var delta = ""
            if !stopsByToken || params.includeStopStrInOutput {
                delta = detokenizer.append(token)
            }
            text += delta
            if !params.stop.isEmpty {
                let verdict = checker.check(tokenId: token, numOutputTokens: numTokens, numPromptTokens: promptLength,
                                            text: text, newCharCount: delta.unicodeScalars.count)
                if case .string? = verdict.stopReason {
                    text = verdict.text
                    finishReason = .stop
                    stopReason = verdict.stopReason
                    abort = out.finishReason == nil
                }
            }
        }
        if finishReason == nil, let reason = out.finishReason {
            finishReason = reason
            if reason == .stop, let last = out.newTokenIds.last {
                stopReason = params.stopTokenIds.contains(last) ? .tokenId(last) : .eos
            }
            text += detokenizer.finish()
        }
        let streamable = checker.streamablePrefix(of: text, finished: finishReason != nil)
        let scalars = Array(streamable.unicodeScalars)
        var delta = ""
        if scalars.count > sentScalars {
            delta.unicodeScalars.append(contentsOf: scalars[sentScalars...])
            sentScalars = scalars.count
        }
        let event = ChoiceEvent(index: index, promptIndex: promptIndex, textDelta: delta, tokenIds: out.newTokenIds,
                                logprobs: out.logprobs, promptLogprobs: out.promptLogprobs,
                                finishReason: finishReason, stopReason: stopReason)
        return (event, abort)
    }
}

extension OpenAIServer {
    /// Submits every (prompt, choice) to the engine and merges their progress into one
    /// stream. Ending the stream's iteration aborts whatever is still running.
    func run(_ job: GenerationJob) -> AsyncThrowingStream<ChoiceEvent, any Error> {
        let (stream, continuation) = AsyncThrowingStream<ChoiceEvent, any Error>.makeStream()
        let engine = self.engine
        let tokenizer = self.tokenizer
        let n = job.options.n
        let task = Task {
            do {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for (p, prompt) in job.prompts.enumerated() {
                        for c in 0..<n {
                            let index = p * n + c
                            let subId = "\(job.requestId)-\(index)"
                            var params = job.options.params
                            params.n = 1
                            let request = EngineRequest(id: subId, promptTokenIds: prompt, params: params,
                                                        eosTokenIds: job.eosTokenIds, priority: job.options.priority,
                                                        choiceIndex: c, arrivalTime: job.arrivalTime)
                            let events = engine.submit(request)
                            group.addTask {
                                var tracker = ChoiceTracker(index: index, promptIndex: p, promptLength: prompt.count,
                                                            tokenizer: tokenizer, params: params, eos: job.eosTokenIds,
                                                            maxModelLen: engine.maxModelLen)
                                for await event in events {
                                    switch event {
                                    case .error(let e):
                                        throw e
                                    case .output(let out):
                                        let (choice, abort) = tracker.apply(out)
                                        continuation.yield(choice)
                                        if abort { engine.abort(subId) }
                                        if choice.finishReason != nil { return }
                                    }
                                }
                                if tracker.finishReason == nil {
                                    continuation.yield(ChoiceEvent(index: index, promptIndex: p, textDelta: "", tokenIds: [],
                                                                   logprobs: [], finishReason: .abort))
                                }
                            }
                        }
                    }
                    try await group.waitForAll()
                }
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }
}
