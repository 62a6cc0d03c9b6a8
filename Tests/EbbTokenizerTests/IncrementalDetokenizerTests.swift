import EbbTestSupport
import Foundation
import Testing
@testable import EbbTokenizer

/// Streams `ids` one at a time; returns the deltas (the flush last).
func stream(_ tok: Tokenizer, _ ids: [Int], skipSpecialTokens: Bool = false) -> [String] {
    var inc = IncrementalDetokenizer(tokenizer: tok, skipSpecialTokens: skipSpecialTokens)
    var deltas = ids.map { inc.append($0) }
    deltas.append(inc.finish())
    return deltas
}

@Suite struct IncrementalDetokenizerTests {
    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"))
    func streamedDeltasEqualDecodeForEveryReferenceCase() throws {
        let tok = try fixtureTokenizer.get()
        for c in try referenceCases().cases {
            for skip in [false, true] {
                let deltas = stream(tok, c.ids, skipSpecialTokens: skip)
                #expect(utf8(deltas.joined()) == utf8(tok.decode(c.ids, skipSpecialTokens: skip)), "\(c.text.debugDescription)")
                for d in deltas { #expect(!d.unicodeScalars.contains("\u{FFFD}"), "\(c.text.debugDescription)") }
            }
        }
    }

    @Test func emojiAndCJKSplitMidCharacter() {
        let tok = Tokenizer.byteLevel()
        let text = "🚀中文👨‍👩‍👧 é 🔥"
        let ids = tok.encode(text)
        #expect(ids.count == text.utf8.count)
        var inc = IncrementalDetokenizer(tokenizer: tok)
        var deltas: [String] = []
        for id in ids {
            let d = inc.append(id)
            #expect(!d.unicodeScalars.contains("\u{FFFD}"))
            deltas.append(d)
        }
        #expect(deltas.contains(""))  // held back while a character was incomplete
        #expect(inc.finish() == "")
        #expect(utf8(deltas.joined()) == utf8(text))
        #expect(utf8(inc.text) == utf8(text))
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"))
    func emojiAndCJKWithTheFixtureTokenizer() throws {
        let tok = try fixtureTokenizer.get()
        let text = "火箭🚀と漢字、한국어 и emoji 😀👍🏽 done"
        let ids = tok.encode(text)
        #expect(utf8(tok.decode(ids)) == utf8(text))
        let deltas = stream(tok, ids)
        #expect(utf8(deltas.joined()) == utf8(text))
        for d in deltas { #expect(!d.unicodeScalars.contains("\u{FFFD}")) }
    }

    @Test func incompleteBytesBecomeReplacementOnFinish() {
        let tok = Tokenizer.byteLevel()
        let euro = Array("€".utf8)  // E2 82 AC
        let ids = [tok.encode("a")[0]] + tok.encode("€").prefix(2)
        var inc = IncrementalDetokenizer(tokenizer: tok)
        var out = ""
        for id in ids { out += inc.append(id) }
        #expect(out == "a")
        #expect(inc.finish() == "\u{FFFD}")
        #expect(inc.text == "a\u{FFFD}")
        #expect(tok.decode(ids) == "a\u{FFFD}")
        #expect(euro.count == 3)
    }

    @Test func invalidBytesMatchDecode() {
        let tok = Tokenizer.byteLevel()
        let sequences: [[UInt8]] = [
            [0xFF], [0xE2, 0x82], [0xE2, 0x82, 0x41], [0xF0, 0x9F, 0x98], [0xF0, 0x9F, 0x98, 0x80],
            [0xED, 0xA0, 0x80], [0xC0, 0xAF], [0xE0, 0x80, 0x80], [0x80, 0x80, 0xE2], [0xF4, 0x90, 0x80, 0x80],
            [0xE2, 0xF0, 0x9F, 0x98, 0x80, 0x82],
        ]
        for bytes in sequences {
            let ids = bytes.map { byteId(tok, $0) }
            let expected = String(decoding: bytes, as: UTF8.self)
            #expect(utf8(tok.decode(ids)) == utf8(expected), "\(bytes)")
            #expect(utf8(stream(tok, ids).joined()) == utf8(expected), "\(bytes)")
        }
    }

    @Test func skipsUnknownAndSpecialIds() {
        let tok = Tokenizer.byteLevel()
        var inc = IncrementalDetokenizer(tokenizer: tok, skipSpecialTokens: true)
        #expect(inc.append(1) == "")
        #expect(inc.append(-1) == "")
        #expect(inc.append(100_000) == "")
        #expect(inc.append(tok.encode("x")[0]) == "x")
        #expect(inc.append(2) == "")
        #expect(inc.finish() == "")
        var keep = IncrementalDetokenizer(tokenizer: tok)
        #expect(keep.append(2) == "<|im_end|>")
    }
}

/// Id of a raw byte in `Tokenizer.byteLevel()`.
func byteId(_ tok: Tokenizer, _ byte: UInt8) -> Int {
    for id in 3..<259 where tok.tokenBytes(for: id) == [byte] { return id }
    return -1
}
