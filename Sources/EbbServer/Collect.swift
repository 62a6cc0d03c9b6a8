import EbbCore
import EbbEngine
import EbbSampling
import Foundation
import Hummingbird

/// A finished choice, for non-streaming responses.
struct CollectedChoice {
    var index: Int
    var promptIndex: Int
    var text = ""
    var tokenIds = [Int]()
    var logprobs = [TokenLogprobs]()
    var promptLogprobs: [TokenLogprobs?]?
    var finishReason: FinishReason = .abort
    var stopReason: StopReason?
}

/// Per-stream state the chunk builder may keep (what was echoed, text offsets).
struct StreamState {
    var echoed = Set<Int>()
    var echoedLogprobs = Set<Int>()
    var textOffsets = [Int: Int]()
    var sentRole = Set<Int>()
}

extension OpenAIServer {
    /// Prompt tokens once per prompt, completion tokens over all choices.
    func usage(_ job: GenerationJob, completionTokens: Int) -> Usage {
        Usage(promptTokens: job.prompts.reduce(0) { $0 + $1.count }, completionTokens: completionTokens)
    }

    /// Runs a job to the end and returns its choices in index order, with timing metrics.
    func collect(_ job: GenerationJob) async throws -> (choices: [CollectedChoice], usage: Usage) {
        var choices = [Int: CollectedChoice]()
        let timer = RequestTimer(metrics: metrics, start: job.arrivalTime)
        for try await event in run(job) {
            var c = choices[event.index] ?? CollectedChoice(index: event.index, promptIndex: event.promptIndex)
            c.text += event.textDelta
            c.tokenIds += event.tokenIds
            c.logprobs += event.logprobs
            if let p = event.promptLogprobs { c.promptLogprobs = p }
            if let r = event.finishReason {
                c.finishReason = r
                c.stopReason = event.stopReason
            }
            timer.tokens(event.tokenIds.count)
            choices[event.index] = c
        }
        let ordered = choices.keys.sorted().compactMap { choices[$0] }
        let generated = ordered.reduce(0) { $0 + $1.tokenIds.count }
        timer.finish(promptTokens: job.prompts.reduce(0) { $0 + $1.count }, status: 200,
                     reason: ordered.first?.finishReason.rawValue ?? "abort")
        return (ordered, usage(job, completionTokens: generated))
    }

    /// Streams a job as server-sent events: one `data:` chunk per choice event, an
    /// optional usage chunk, then `data: [DONE]`. A client that goes away aborts the job.
    func streamResponse(_ job: GenerationJob,
                        chunk: @escaping @Sendable (ChoiceEvent, inout StreamState) -> (any Encodable)?,
                        usageChunk: @escaping @Sendable (Usage) -> (any Encodable)?) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-cache"
        let body = ResponseBody { [self] writer in
            let timer = RequestTimer(metrics: metrics, start: job.arrivalTime)
            var state = StreamState()
            var generated = 0
            var reason = "abort"
            do {
                for try await event in run(job) {
                    generated += event.tokenIds.count
                    timer.tokens(event.tokenIds.count)
                    if let r = event.finishReason { reason = r.rawValue }
                    if let c = chunk(event, &state) {
                        try await writer.write(ByteBuffer(string: "data: " + JSONValueEncoder.encode(c).serialized() + "\n\n"))
                    }
                }
                if let u = usageChunk(usage(job, completionTokens: generated)) {
                    try await writer.write(ByteBuffer(string: "data: " + JSONValueEncoder.encode(u).serialized() + "\n\n"))
                }
            } catch let error where !(error is CancellationError) {
                // Errors after the headers went out are reported in-band, as vLLM does.
                let api = APIError.from(error)
                try? await writer.write(ByteBuffer(string: "data: " + api.json.serialized() + "\n\n"))
            }
            timer.finish(promptTokens: job.prompts.reduce(0) { $0 + $1.count }, status: 200, reason: reason)
            try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: headers, body: body)
    }
}

/// Records TTFT, TPOT and end-to-end latency of one request into the metrics.
final class RequestTimer: @unchecked Sendable {
    let metrics: ServerMetrics
    let start: Double
    var firstToken: Double?
    var count = 0

    init(metrics: ServerMetrics, start: Double) {
        self.metrics = metrics
        self.start = start
    }

    func tokens(_ n: Int) {
        guard n > 0 else { return }
        if firstToken == nil {
            let now = Date().timeIntervalSince1970
            firstToken = now
            metrics.timeToFirstToken.record(now - start)
        }
        count += n
    }

    func finish(promptTokens: Int, status: Int, reason: String) {
        let now = Date().timeIntervalSince1970
        metrics.e2eLatency.record(now - start)
        if let first = firstToken, count > 1 {
            metrics.timePerOutputToken.record((now - first) / Double(count - 1))
        }
        metrics.promptTokens.increment(by: Int64(promptTokens))
        metrics.generationTokens.increment(by: Int64(count))
        metrics.countRequest(status: status, finishReason: reason)
    }
}
