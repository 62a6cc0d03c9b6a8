import EbbCore
import Foundation
import Testing
@testable import EbbTokenizer

@Suite struct BPEModelTests {
    static func tokenizer(vocab: String, merges: String, extra: String = "", preTokenizer: String = "null",
                          decoder: String = "null") throws -> Tokenizer {
        let json = #"{"normalizer": null, "pre_tokenizer": \#(preTokenizer), "decoder": \#(decoder), "added_tokens": [], "#
            + #""model": {"type": "BPE", "vocab": \#(vocab), "merges": \#(merges)\#(extra)}}"#
        return try Tokenizer(json: Data(json.utf8))
    }

    @Test func mergesApplyLowestRankFirstThenLeftmost() throws {
        let tok = try Self.tokenizer(
            vocab: #"{"a": 0, "b": 1, "c": 2, "ab": 3, "bc": 4, "aa": 5, "abc": 6}"#,
            merges: #"["b c", "a b", "a a", "a bc"]"#)
        #expect(tok.encode("abc") == [6])      // b c first, then a bc
        #expect(tok.encode("aaa") == [5, 0])   // overlapping pair: leftmost wins
        #expect(tok.encode("aaaa") == [5, 5])
        #expect(tok.encode("abab") == [3, 3])
        #expect(tok.encode("x") == [])         // no unk token: unknown characters are dropped
    }

    @Test func unknownTokenAndFusing() throws {
        let plain = try Self.tokenizer(vocab: #"{"<unk>": 0, "a": 1}"#, merges: "[]", extra: #", "unk_token": "<unk>""#)
        #expect(plain.encode("axxa") == [1, 0, 0, 1])
        let fused = try Self.tokenizer(vocab: #"{"<unk>": 0, "a": 1}"#, merges: "[]",
                                       extra: #", "unk_token": "<unk>", "fuse_unk": true"#)
        #expect(fused.encode("axxa") == [1, 0, 1])
    }

    @Test func continuingSubwordPrefixAndSuffix() throws {
        let tok = try Self.tokenizer(
            vocab: ###"{"a": 0, "##b": 1, "##c": 2, "ab": 3, "abc</w>": 4, "##c</w>": 5}"###,
            merges: ###"["a ##b", "ab ##c</w>"]"###,
            extra: ###", "continuing_subword_prefix": "##", "end_of_word_suffix": "</w>""###)
        #expect(tok.encode("abc") == [4])
    }

    @Test func canonicallyEquivalentTokensStayDistinct() throws {
        // "é" precomposed and "e" + U+0301 are different tokens.
        let tok = try Self.tokenizer(vocab: "{\"\u{E9}\": 0, \"e\": 1, \"\u{301}\": 2, \"e\u{301}\": 3}",
                                     merges: "[\"e \u{301}\"]", decoder: #"{"type": "Sequence", "decoders": []}"#)
        #expect(tok.encode("\u{E9}") == [0])
        #expect(tok.encode("e\u{301}") == [3])
        #expect(tok.tokenId(for: "\u{E9}") == 0)
        #expect(tok.tokenId(for: "e\u{301}") == 3)
        #expect(Array(tok.decode([3, 0]).unicodeScalars) == ["e", "\u{301}", "\u{E9}"])
    }

    @Test func withoutDecoderTokensAreJoinedWithSpaces() throws {
        let tok = try Self.tokenizer(vocab: #"{"a": 0, "b": 1}"#, merges: "[]")
        #expect(tok.decode([0, 1, 0]) == "a b a")
        var inc = IncrementalDetokenizer(tokenizer: tok)
        let streamed = [0, 1, 0].map { inc.append($0) }.joined() + inc.finish()
        #expect(streamed == "a b a")
    }
}
