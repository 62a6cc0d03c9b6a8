import EbbCore

/// Why a `stop` finish happened (vLLM's `stop_reason`).
public enum StopReason: Sendable, Equatable, Hashable {
    /// The model's EOS token (vLLM reports `None`).
    case eos
    /// One of `stopTokenIds`.
    case tokenId(Int)
    /// One of `stop`.
    case string(String)
}

/// The verdict on one new token.
public struct StopCheckResult: Sendable, Equatable {
    /// `nil` = keep generating.
    public var finishReason: FinishReason?
    /// Set for `stop` finishes.
    public var stopReason: StopReason?
    /// The output text to keep: the input text, truncated when a stop string matched.
    public var text: String

    public var isFinished: Bool { finishReason != nil }

    public init(finishReason: FinishReason?, stopReason: StopReason?, text: String) {
        self.finishReason = finishReason
        self.stopReason = stopReason
        self.text = text
    }
}

/// Decides after each generated token whether a sequence is finished, as vLLM's
/// `check_stop` plus its detokenizer's stop-string check.
///
/// "Characters" here are Unicode scalars (as Python `str` positions), not grapheme
/// clusters, so a stop string matches exactly the scalars the detokenizer produced and
/// counts line up with vLLM's.
///
/// Order, first match wins:
/// 1. stop string found in the text → `stop`, text truncated before it (or, with
///    `includeStopStrInOutput`, right after it — text past the stop string is dropped);
/// 2. the new token is EOS (unless `ignoreEOS`) or in `stopTokenIds` → `stop`;
/// 3. `maxTokens` reached, or prompt + output reached `maxModelLen` → `length`.
/// Rules 1–2 apply only once more than `minTokens` tokens exist (the sampler already
/// masks EOS and stop ids before that). vLLM checks length before EOS, so a sequence whose
/// last allowed token is EOS reports `length` there; here it reports `stop`.
///
/// The caller detokenizes; the text of an EOS / stop-id token should not be appended to
/// the output text unless `includeStopStrInOutput` (vLLM's rule).
public struct StopChecker: Sendable {
    public let params: SamplingParams
    public let eosTokenIds: Set<Int>
    public let maxModelLen: Int?
    private let stops: [(string: String, scalars: [Unicode.Scalar])]
    private let longestStop: Int

    public init(params: SamplingParams, eosTokenIds: [Int], maxModelLen: Int? = nil) {
        self.params = params
        self.eosTokenIds = Set(eosTokenIds)
        self.maxModelLen = maxModelLen
        self.stops = params.stop.filter { !$0.isEmpty }.map { ($0, Array($0.unicodeScalars)) }
        self.longestStop = stops.map(\.scalars.count).max() ?? 0
    }

    /// How many trailing characters (Unicode scalars) of the text must be held back from a
    /// stream while the sequence is running, so that a stop string that is only partly
    /// generated is never sent: the longest stop string's length − 1, or 0 without stop
    /// strings or with `includeStopStrInOutput` (then nothing sent is ever taken back).
    public var holdBackCount: Int {
        params.includeStopStrInOutput ? 0 : max(0, longestStop - 1)
    }

    /// The part of `text` that may be streamed now: all of it when `finished`, else all
    /// but the last `holdBackCount` characters.
    public func streamablePrefix(of text: String, finished: Bool) -> Substring {
        let h = holdBackCount
        if finished || h == 0 { return Substring(text) }
        let scalars = text.unicodeScalars
        let end = scalars.index(scalars.endIndex, offsetBy: -h, limitedBy: scalars.startIndex) ?? scalars.startIndex
        return Substring(scalars[scalars.startIndex..<end])
    }

    /// Checks one new token.
    /// - Parameters:
    ///   - tokenId: the token just generated (already counted in `numOutputTokens`).
    ///   - numOutputTokens: generated tokens so far, including `tokenId`.
    ///   - numPromptTokens: prompt length (for `maxModelLen`).
    ///   - text: the detokenized output text so far, including this token's text.
    ///   - newCharCount: characters (Unicode scalars) this token added to `text`; only
    ///     matches that end in them are searched (a stop string that spans several tokens
    ///     is found, because the search starts up to `stop.count - 1` characters earlier).
    ///     `nil` searches the whole text.
    public func check(
        tokenId: Int, numOutputTokens: Int, numPromptTokens: Int = 0, text: String, newCharCount: Int? = nil
    ) -> StopCheckResult {
        if numOutputTokens > params.minTokens {
            if !stops.isEmpty, let (s, cut) = findStopString(in: text, newCharCount: newCharCount) {
                return StopCheckResult(finishReason: .stop, stopReason: .string(s), text: cut)
            }
            if !params.ignoreEOS && eosTokenIds.contains(tokenId) {
                return StopCheckResult(finishReason: .stop, stopReason: .eos, text: text)
            }
            if params.stopTokenIds.contains(tokenId) {
                return StopCheckResult(finishReason: .stop, stopReason: .tokenId(tokenId), text: text)
            }
        }
        if let maxTokens = params.maxTokens, numOutputTokens >= maxTokens {
            return StopCheckResult(finishReason: .length, stopReason: nil, text: text)
        }
        if let maxModelLen, numPromptTokens + numOutputTokens >= maxModelLen {
            return StopCheckResult(finishReason: .length, stopReason: nil, text: text)
        }
        return StopCheckResult(finishReason: nil, stopReason: nil, text: text)
    }

    /// The earliest stop string (ties: the first listed) whose match ends within the new
    /// characters, and the text truncated for it.
    private func findStopString(in text: String, newCharCount: Int?) -> (String, String)? {
        let scalars = text.unicodeScalars
        let windowStart: String.UnicodeScalarView.Index
        if let newCharCount {
            let back = max(0, newCharCount) + longestStop - 1
            windowStart = scalars.index(scalars.endIndex, offsetBy: -back, limitedBy: scalars.startIndex)
                ?? scalars.startIndex
        } else {
            windowStart = scalars.startIndex
        }
        let window = Array(scalars[windowStart...])
        let newCount = newCharCount.map { min(max(0, $0), window.count) } ?? window.count
        // A match must end after position `window.count - newCount` (i.e. include a new char).
        let minEnd = window.count - newCount + 1
        var best: (pos: Int, idx: Int)? = nil
        for (si, stop) in stops.enumerated() {
            let n = stop.scalars.count
            guard n <= window.count else { continue }
            var start = max(0, minEnd - n)
            while start + n <= window.count {
                if let b = best, start >= b.pos { break }
                if window[start] == stop.scalars[0] && window[start..<(start + n)].elementsEqual(stop.scalars) {
                    best = (start, si)
                    break
                }
                start += 1
            }
        }
        guard let best else { return nil }
        let stop = stops[best.idx]
        let cutOffset = params.includeStopStrInOutput ? best.pos + stop.scalars.count : best.pos
        let cut = scalars.index(windowStart, offsetBy: cutOffset)
        return (stop.string, String(Substring(scalars[scalars.startIndex..<cut])))
    }
}
