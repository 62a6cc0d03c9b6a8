import Testing
import EbbCore
import EbbSampling

@Suite struct StopCheckerTests {
    @Test func eosAndStopTokenIds() {
        let c = StopChecker(params: SamplingParams(stopTokenIds: [7]), eosTokenIds: [2])
        #expect(c.check(tokenId: 5, numOutputTokens: 1, text: "a") == StopCheckResult(finishReason: nil, stopReason: nil, text: "a"))
        let e = c.check(tokenId: 2, numOutputTokens: 2, text: "ab")
        #expect(e.finishReason == .stop && e.stopReason == .eos && e.text == "ab")
        let s = c.check(tokenId: 7, numOutputTokens: 2, text: "ab")
        #expect(s.finishReason == .stop && s.stopReason == .tokenId(7))
    }

    @Test func ignoreEOSKeepsGoingButStopIdsStillStop() {
        let c = StopChecker(params: SamplingParams(stopTokenIds: [7], ignoreEOS: true), eosTokenIds: [2])
        #expect(!c.check(tokenId: 2, numOutputTokens: 3, text: "").isFinished)
        #expect(c.check(tokenId: 7, numOutputTokens: 3, text: "").stopReason == .tokenId(7))
    }

    @Test func minTokensDefersStops() {
        let c = StopChecker(params: SamplingParams(minTokens: 2, stop: ["x"]), eosTokenIds: [2])
        #expect(!c.check(tokenId: 2, numOutputTokens: 1, text: "x").isFinished)
        #expect(!c.check(tokenId: 2, numOutputTokens: 2, text: "xx").isFinished)
        #expect(c.check(tokenId: 2, numOutputTokens: 3, text: "xx", newCharCount: 0).stopReason == .eos)
    }

    @Test func lengthFromMaxTokensAndModelLen() {
        let c = StopChecker(params: SamplingParams(maxTokens: 3), eosTokenIds: [0], maxModelLen: 10)
        #expect(!c.check(tokenId: 5, numOutputTokens: 2, numPromptTokens: 4, text: "").isFinished)
        #expect(c.check(tokenId: 5, numOutputTokens: 3, numPromptTokens: 4, text: "").finishReason == .length)
        #expect(c.check(tokenId: 5, numOutputTokens: 2, numPromptTokens: 8, text: "").finishReason == .length)
        // EOS on the last allowed token reports stop (documented difference from vLLM).
        #expect(c.check(tokenId: 0, numOutputTokens: 3, numPromptTokens: 4, text: "").finishReason == .stop)
        #expect(c.check(tokenId: 5, numOutputTokens: 3, text: "").stopReason == nil)
    }

    /// Feeds token texts one by one like the engine would.
    func run(_ checker: StopChecker, _ pieces: [String]) -> (StopCheckResult?, streamed: String) {
        var text = ""
        var sent = 0  // scalars streamed so far
        var streamed = ""
        for (i, piece) in pieces.enumerated() {
            text += piece
            let r = checker.check(tokenId: 100 + i, numOutputTokens: i + 1, text: text, newCharCount: piece.unicodeScalars.count)
            let visible = checker.streamablePrefix(of: r.text, finished: r.isFinished)
            let scalars = Array(visible.unicodeScalars)
            if scalars.count > sent {
                streamed += String(String.UnicodeScalarView(scalars[sent...]))
                sent = scalars.count
            }
            if r.isFinished { return (r, streamed) }
        }
        return (nil, streamed)
    }

    @Test func stopStringAcrossTokensTruncatesBeforeIt() {
        let c = StopChecker(params: SamplingParams(stop: ["o Wo"]), eosTokenIds: [])
        let (r, streamed) = run(c, ["Hel", "lo W", "orld"])
        #expect(r?.finishReason == .stop)
        #expect(r?.stopReason == .string("o Wo"))
        #expect(r?.text == "Hell")
        #expect(streamed == "Hell")  // the partial "o W" was held back, never sent
    }

    @Test func includeStopStringKeepsItAndDropsTheRest() {
        let c = StopChecker(params: SamplingParams(stop: ["World"], includeStopStrInOutput: true), eosTokenIds: [])
        #expect(c.holdBackCount == 0)
        let (r, streamed) = run(c, ["Hello Wo", "rld!! more"])
        #expect(r?.text == "Hello World")
        #expect(streamed == "Hello World")
    }

    @Test func holdBackIsLongestStopMinusOne() {
        let c = StopChecker(params: SamplingParams(stop: ["ab", "STOP!"]), eosTokenIds: [])
        #expect(c.holdBackCount == 4)
        #expect(c.streamablePrefix(of: "hello", finished: false) == "h")
        #expect(c.streamablePrefix(of: "hey", finished: false) == "")
        #expect(c.streamablePrefix(of: "hey", finished: true) == "hey")
        #expect(StopChecker(params: SamplingParams(), eosTokenIds: []).holdBackCount == 0)
    }

    @Test func streamedTextIsAlwaysAPrefixOfTheFinalText() {
        let c = StopChecker(params: SamplingParams(stop: ["</end>", "\n\n"]), eosTokenIds: [])
        let pieces = ["The", " answer", " is <", "/e", "nd", "> trailing"]
        let (r, streamed) = run(c, pieces)
        #expect(r?.text == "The answer is ")
        #expect(r?.stopReason == .string("</end>"))
        #expect(streamed == "The answer is ")
        // Without a stop, everything is streamed once finished by length.
        let c2 = StopChecker(params: SamplingParams(maxTokens: 3, stop: ["zzz"]), eosTokenIds: [])
        let (r2, s2) = run(c2, ["ab", "cd", "ez"])
        #expect(r2?.finishReason == .length && s2 == "abcdez")
    }

    @Test func earliestMatchWinsAndOnlyNewTextIsSearched() {
        let c = StopChecker(params: SamplingParams(stop: ["cd", "b"]), eosTokenIds: [])
        let r = c.check(tokenId: 1, numOutputTokens: 1, text: "abcd", newCharCount: nil)
        #expect(r.stopReason == .string("b") && r.text == "a")
        // "b" is old text (not in the new characters, nor a span into them): not matched again.
        let r2 = c.check(tokenId: 1, numOutputTokens: 1, text: "abxx", newCharCount: 2)
        #expect(!r2.isFinished)
        // A stop string spanning old and new text is found.
        let r3 = c.check(tokenId: 1, numOutputTokens: 1, text: "xxcd", newCharCount: 1)
        #expect(r3.stopReason == .string("cd") && r3.text == "xx")
    }

    @Test func unicodeStopStrings() {
        let c = StopChecker(params: SamplingParams(stop: ["🛑", "e\u{301}"]), eosTokenIds: [])
        let (r, _) = run(c, ["héllo ", "wor", "ld 🛑 x"])  // precomposed é does not match e + U+0301
        #expect(r?.text == "héllo world ")
        let (r2, _) = run(c, ["cafe", "\u{301} ok"])
        #expect(r2?.text == "caf")
        #expect(r2?.stopReason == .string("e\u{301}"))
    }
}
