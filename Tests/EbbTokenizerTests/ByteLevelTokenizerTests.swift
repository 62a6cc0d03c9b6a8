import Foundation
import Testing
@testable import EbbTokenizer

@Suite struct ByteLevelTokenizerTests {
    @Test func layout() {
        let tok = Tokenizer.byteLevel()
        #expect(tok.vocabSize == 259)
        #expect(tok.eosTokenId == 2)
        #expect(tok.bosTokenId == nil)
        #expect(tok.specialTokenIds == [0, 1, 2])
        #expect(tok.token(for: 0) == "<|endoftext|>")
        #expect(tok.token(for: 1) == "<|im_start|>")
        #expect(tok.token(for: 2) == "<|im_end|>")
        #expect(tok.token(for: 3) == "!")
        #expect(tok.tokenId(for: "Ġ") == 223)
        var seen = Set<[UInt8]>()
        for id in 3..<259 {
            let bytes = tok.tokenBytes(for: id)
            #expect(bytes?.count == 1)
            if let bytes { seen.insert(bytes) }
        }
        #expect(seen.count == 256)
        #expect(tok.token(for: 259) == nil)
    }

    @Test func roundTripsArbitraryStrings() {
        let tok = Tokenizer.byteLevel()
        var rng = SplitMix64(seed: 7)
        let samples = ["", "hello", "Hello, world!\n", "🚀🔥👨‍👩‍👧‍👦", "中文字符测试", "e\u{301}", "\u{0}\u{7F}\r\n\t",
                       "<|im_start|>user\nhi<|im_end|>", "  spaces  ", "Ünïcödé — “quotes”"]
        for s in samples { check(tok, s) }
        let pool: [Unicode.Scalar] = ["a", " ", "\n", "é", "中", "🚀", "\u{0}", "\u{FFFD}", "\u{10FFFF}", "<", "|", "Ġ", "\u{301}"]
        for _ in 0..<300 {
            var v = String.UnicodeScalarView()
            for _ in 0..<Int(rng.next() % 20) { v.append(pool[Int(rng.next() % UInt64(pool.count))]) }
            check(tok, String(v))
        }
    }

    func check(_ tok: Tokenizer, _ s: String) {
        let ids = tok.encode(s)
        let specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"].filter { s.contains($0) }
        if specials.isEmpty { #expect(ids.count == s.utf8.count, "\(s.debugDescription)") }
        #expect(utf8(tok.decode(ids)) == utf8(s), "\(s.debugDescription)")
        #expect(utf8(stream(tok, ids).joined()) == utf8(s))
    }

    @Test func specialTokensEncodeAsOneId() {
        let tok = Tokenizer.byteLevel()
        let ids = tok.encode("<|im_start|>hi<|im_end|>")
        #expect(ids.count == 4)
        #expect(ids.first == 1 && ids.last == 2)
        #expect(tok.decode(ids, skipSpecialTokens: true) == "hi")
    }

    @Test func decodeIgnoresIdsBeyondTheVocabulary() {
        let tok = Tokenizer.byteLevel()
        // The builtin model pads its vocabulary up; those ids must decode to nothing.
        #expect(tok.decode([259, 300, 511, -1] + tok.encode("ok") + [Int.max]) == "ok")
        #expect(tok.tokenBytes(for: 400) == nil)
        #expect(tok.token(for: Int.min) == nil)
    }
}

/// Deterministic generator for tests.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
