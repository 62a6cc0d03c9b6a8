import EbbCore
import Foundation
import Testing
@testable import EbbTokenizer

/// SentencePiece-style BPE (Mixtral/Mistral/Llama-2 `tokenizer.json`s) against Hugging Face
/// `tokenizers` 0.23.3: the fixture tokenizer and its reference outputs live in
/// SPReferenceData.swift (made by scripts/make_sp_fixture.py); no fixture files needed.
@Suite struct SentencePieceTests {
    static var reference: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(spReferenceJSON.utf8))) as? [String: Any] ?? [:]
    }

    static func cases(_ value: Any?) -> [[String: Any]] { value as? [[String: Any]] ?? [] }

    /// The fixture tokenizer.json with top-level keys replaced (and "model" keys merged).
    static func tokenizer(_ overrides: [String: Any] = [:]) throws -> Tokenizer {
        var root = try #require(reference["tokenizer"] as? [String: Any])
        for (k, v) in overrides {
            if k == "model", let changes = v as? [String: Any], var model = root["model"] as? [String: Any] {
                for (mk, mv) in changes { model[mk] = mv }
                root["model"] = model
            } else {
                root[k] = v
            }
        }
        return try Tokenizer(json: try JSONSerialization.data(withJSONObject: root))
    }

    static func streamed(_ tok: Tokenizer, _ ids: [Int], skip: Bool) -> [String] {
        var inc = IncrementalDetokenizer(tokenizer: tok, skipSpecialTokens: skip)
        var deltas = ids.map { inc.append($0) }
        deltas.append(inc.finish())
        return deltas
    }

    @Test func fixtureLoadsWithMixtralLayout() throws {
        let tok = try Self.tokenizer()
        #expect(Self.reference["version"] as? String == "0.23.3")
        #expect(tok.tokenId(for: "<unk>") == 0)
        #expect(tok.tokenId(for: "<s>") == 1)
        #expect(tok.tokenId(for: "<0x0A>") == 13)
        #expect(tok.tokenBytes(for: 13) == [0x0A])
        #expect(tok.tokenBytes(for: 3 + 0xE4) == [0xE4])
        #expect(tok.specialTokenIds == [0, 1, 2])
        let ws = try #require(tok.tokenId(for: "\u{2581}"))
        #expect(tok.tokenBytes(for: ws) == [0x20])
    }

    @Test func encodingsMatch() throws {
        let tok = try Self.tokenizer()
        let cases = Self.cases(Self.reference["encodings"])
        #expect(cases.count >= 100)
        for c in cases {
            let text = try #require(c["text"] as? String)
            let ids = try #require(c["ids"] as? [Int])
            let plain = try #require(c["plain"] as? [Int])
            #expect(tok.encode(text) == ids, "\(text.debugDescription)")
            #expect(tok.encode(text, addSpecialTokens: true) == ids, "\(text.debugDescription)")
            #expect(tok.encode(text, addSpecialTokens: false) == plain, "\(text.debugDescription)")
            #expect(utf8(tok.decode(ids)) == utf8(c["decoded"] as? String), "\(text.debugDescription)")
            #expect(utf8(tok.decode(ids, skipSpecialTokens: true)) == utf8(c["skipped"] as? String), "\(text.debugDescription)")
            #expect(utf8(tok.decode(plain)) == utf8(c["plain_decoded"] as? String), "\(text.debugDescription)")
        }
    }

    /// Streaming gives the same deltas as Hugging Face's `DecodeStream` (which re-decodes a
    /// window of ids), and their concatenation is `decode`.
    @Test func incrementalDecodingMatchesDecodeStream() throws {
        let tok = try Self.tokenizer()
        for c in Self.cases(Self.reference["encodings"]) {
            let text = try #require(c["text"] as? String)
            let ids = try #require(c["ids"] as? [Int])
            for (skip, key) in [(false, "stream"), (true, "stream_skipped")] {
                let deltas = Self.streamed(tok, ids, skip: skip)
                #expect(deltas.last == "", "\(text.debugDescription)")
                // (`DecodeStream` never emits text ending in U+FFFD, even a real one.)
                if !text.contains("\u{FFFD}") {
                    #expect(Array(deltas.dropLast()).map(utf8) == (c[key] as? [String])?.map(utf8), "\(text.debugDescription) skip=\(skip)")
                }
                #expect(utf8(deltas.joined()) == utf8(tok.decode(ids, skipSpecialTokens: skip)), "\(text.debugDescription)")
                for d in deltas { #expect(!d.unicodeScalars.contains("\u{FFFD}") || text.contains("\u{FFFD}"), "\(text.debugDescription)") }
            }
        }
    }

    @Test func decodingsMatch() throws {
        let tok = try Self.tokenizer()
        let cases = Self.cases(Self.reference["decodings"])
        #expect(cases.count >= 50)
        var streamedChecked = 0
        for c in cases {
            let ids = try #require(c["ids"] as? [Int])
            #expect(utf8(tok.decode(ids)) == utf8(c["text"] as? String), "\(ids)")
            #expect(utf8(tok.decode(ids, skipSpecialTokens: true)) == utf8(c["skipped"] as? String), "\(ids)")
            for skip in [false, true] {
                // The one documented difference: a byte run streamed in part, then invalid.
                guard !Self.hasPartlyStreamedInvalidRun(tok, ids, skip: skip) else { continue }
                streamedChecked += 1
                #expect(utf8(Self.streamed(tok, ids, skip: skip).joined()) == utf8(tok.decode(ids, skipSpecialTokens: skip)),
                        "\(ids) skip=\(skip)")
            }
        }
        #expect(streamedChecked > cases.count)
    }

    /// Whether a run of byte tokens (special tokens skipped or not) is invalid UTF-8 after
    /// a prefix of complete characters.
    static func hasPartlyStreamedInvalidRun(_ tok: Tokenizer, _ ids: [Int], skip: Bool) -> Bool {
        var runs: [[UInt8]] = [[]]
        for id in ids {
            guard let token = tok.token(for: id), !(skip && tok.isSpecialToken(id)) else { continue }
            if let b = TokenDecoder.parseByteToken(token) { runs[runs.count - 1].append(b) } else { runs.append([]) }
        }
        return runs.contains { run in
            guard String(validating: run, as: UTF8.self) == nil else { return false }
            // The longest prefix of complete, valid characters.
            for n in stride(from: run.count - 1, through: 1, by: -1) where String(validating: run[..<n], as: UTF8.self) != nil {
                return true
            }
            return false
        }
    }

    @Test func stageVariantsMatch() throws {
        let variants = try #require(Self.reference["variants"] as? [String: [String: Any]])
        #expect(variants.count >= 20)
        for (name, variant) in variants.sorted(by: { $0.key < $1.key }) {
            let overrides = try #require(variant["overrides"] as? [String: Any])
            let tok = try Self.tokenizer(overrides)
            for c in Self.cases(variant["cases"]) {
                let text = try #require(c["text"] as? String)
                let ids = try #require(c["ids"] as? [Int])
                #expect(tok.encode(text) == ids, "\(name): \(text.debugDescription)")
                if let plain = c["plain"] as? [Int] {
                    #expect(tok.encode(text, addSpecialTokens: false) == plain, "\(name): \(text.debugDescription)")
                }
                #expect(utf8(tok.decode(ids)) == utf8(c["decoded"] as? String), "\(name): \(text.debugDescription)")
                #expect(utf8(tok.decode(ids, skipSpecialTokens: true)) == utf8(c["skipped"] as? String), "\(name): \(text.debugDescription)")
                for skip in [false, true] {
                    #expect(utf8(Self.streamed(tok, ids, skip: skip).joined()) == utf8(tok.decode(ids, skipSpecialTokens: skip)),
                            "\(name): \(text.debugDescription) skip=\(skip)")
                }
            }
            for c in Self.cases(variant["decodings"]) {
                let ids = try #require(c["ids"] as? [Int])
                #expect(utf8(tok.decode(ids)) == utf8(c["text"] as? String), "\(name): \(ids)")
                #expect(utf8(tok.decode(ids, skipSpecialTokens: true)) == utf8(c["skipped"] as? String), "\(name): \(ids)")
                for skip in [false, true] where !Self.hasPartlyStreamedInvalidRun(tok, ids, skip: skip) {
                    #expect(utf8(Self.streamed(tok, ids, skip: skip).joined()) == utf8(tok.decode(ids, skipSpecialTokens: skip)),
                            "\(name): \(ids) skip=\(skip)")
                }
            }
            if let pieces = variant["pieces"] as? [[String: Any]] {
                let pre = try #require(tok.preTokenizer, "\(name)")
                for c in pieces {
                    let text = try #require(c["text"] as? String)
                    #expect(pre.apply([text]).map(utf8) == (c["pieces"] as? [String])?.map(utf8), "\(name): \(text.debugDescription)")
                }
            }
        }
    }

    // MARK: Targeted behaviour

    @Test func streamingHoldsSplitCharactersAndDropsTheLeadingSpace() throws {
        let tok = try Self.tokenizer()
        // 龍 is not in the vocabulary: three byte tokens.
        let ids = tok.encode("Hello \u{9F8D} world")
        #expect(ids.first == 1)
        let deltas = Self.streamed(tok, ids, skip: true)
        #expect(deltas.first == "")  // <s> skipped
        // The first token's "▁" gives no space: "Hello", not " Hello".
        // (Here "▁" is a token of its own: it gives nothing, then "H" follows.)
        #expect(deltas.first { !$0.isEmpty } == "H", "\(deltas)")
        #expect(deltas == ["", "", "H", "e", "ll", "o", " ", "", "", "\u{9F8D}", " wor", "l", "d", ""])
        #expect(deltas.joined() == "Hello \u{9F8D} world")
        #expect(deltas.contains("\u{9F8D}"))
        #expect(!deltas.contains { $0.contains("\u{FFFD}") })
        #expect(tok.decode(ids, skipSpecialTokens: true) == "Hello \u{9F8D} world")
        #expect(tok.decode(ids) == "<s> Hello \u{9F8D} world")
    }

    /// Primed with the prompt, the first generated token keeps its space (vLLM's output).
    @Test func primedStreamKeepsTheFirstSpace() throws {
        let tok = try Self.tokenizer()
        let prompt = tok.encode("[INST] Hi [/INST]")
        let answer = tok.encode(" Hello \u{9F8D}", addSpecialTokens: false)
        #expect(tok.decode(prompt + answer, skipSpecialTokens: true).hasSuffix("[/INST]  Hello \u{9F8D}"))
        var primed = IncrementalDetokenizer(tokenizer: tok, skipSpecialTokens: true)
        primed.prime(with: prompt)
        #expect(primed.text == "")
        let out = answer.map { primed.append($0) }.joined() + primed.finish()
        let whole = tok.decode(prompt + answer, skipSpecialTokens: true)
        #expect(out == String(whole.dropFirst(tok.decode(prompt, skipSpecialTokens: true).count)))
        #expect(out == "  Hello \u{9F8D}")
        var plain = IncrementalDetokenizer(tokenizer: tok, skipSpecialTokens: true)
        #expect(answer.map { plain.append($0) }.joined() + plain.finish() == " Hello \u{9F8D}")
        // A prompt ending inside a byte run: its bytes are dropped.
        var cut = IncrementalDetokenizer(tokenizer: tok)
        cut.prime(with: [3 + 0xE4, 3 + 0xB8])
        #expect(cut.append(try #require(tok.tokenId(for: "a"))) + cut.finish() == "a")
        var byteLevel = IncrementalDetokenizer(tokenizer: Tokenizer.byteLevel())
        byteLevel.prime(with: Tokenizer.byteLevel().encode("x\u{9F8D}").dropLast())
        #expect(byteLevel.append(Tokenizer.byteLevel().encode("y")[0]) + byteLevel.finish() == "y")
    }

    @Test func incompleteByteRunBecomesReplacementCharacters() throws {
        let tok = try Self.tokenizer()
        let e4 = 3 + 0xE4, b8 = 3 + 0xB8
        let a = try #require(tok.tokenId(for: "a"))
        // Hugging Face: one U+FFFD per byte of an invalid run.
        #expect(tok.decode([e4, b8, a]) == "\u{FFFD}\u{FFFD}a")
        #expect(Self.streamed(tok, [e4, b8, a], skip: false).joined() == "\u{FFFD}\u{FFFD}a")
        #expect(tok.decode([e4, b8]) == "\u{FFFD}\u{FFFD}")
        #expect(Self.streamed(tok, [e4, b8], skip: false) == ["", "", "\u{FFFD}\u{FFFD}"])
        // A special token skipped between byte tokens does not end the run.
        let run = [3 + 0xE4, 1, 3 + 0xB8, 3 + 0xAD]
        #expect(tok.decode(run, skipSpecialTokens: true) == "\u{4E2D}")
        #expect(Self.streamed(tok, run, skip: true).joined() == "\u{4E2D}")
        #expect(tok.decode(run) == "\u{FFFD}<s>\u{FFFD}\u{FFFD}")
    }

    @Test func byteTokensParseLikeRust() {
        #expect(TokenDecoder.parseByteToken("<0x0A>") == 0x0A)
        #expect(TokenDecoder.parseByteToken("<0xff>") == 0xFF)
        #expect(TokenDecoder.parseByteToken("<0x+a>") == 0x0A)
        #expect(TokenDecoder.parseByteToken("<0xZZ>") == nil)
        #expect(TokenDecoder.parseByteToken("<0x0A") == nil)
        #expect(TokenDecoder.parseByteToken("<0x0A>>") == nil)
        #expect(TokenDecoder.parseByteToken("<0x\u{E9}>") == nil)
        #expect(BPEModel.byteToken(0x0A) == "<0x0A>")
        #expect(BPEModel.byteToken(0xE4) == "<0xE4>")
    }

    /// A model with unk, fuse_unk and byte fallback missing some byte tokens: the order of
    /// Hugging Face's `merge_word` (byte tokens go in ahead of a waiting unknown).
    @Test func unknownsAndByteFallbackOrder() throws {
        func make(fuse: Bool) throws -> Tokenizer {
            let json = """
            {"normalizer": null, "pre_tokenizer": null, "post_processor": null, "decoder": null, "added_tokens": [],
             "model": {"type": "BPE", "unk_token": "<unk>", "fuse_unk": \(fuse), "byte_fallback": true,
                       "vocab": {"<unk>": 0, "a": 1, "<0xC3>": 2, "<0xA9>": 3, "<0xE2>": 4}, "merges": []}}
            """
            return try Tokenizer(json: Data(json.utf8))
        }
        let fused = try make(fuse: true), unfused = try make(fuse: false)
        // é → C3 A9 (both present); € → E2 82 AC (82 missing → unk); ü → C3 BC (BC missing → unk).
        #expect(fused.encode("a\u{20AC}\u{FC}a") == [1, 0, 1])
        #expect(unfused.encode("a\u{20AC}\u{FC}a") == [1, 0, 0, 1])
        #expect(fused.encode("\u{20AC}\u{E9}\u{FC}") == [2, 3, 0])
        #expect(unfused.encode("\u{20AC}\u{E9}\u{FC}a") == [2, 3, 0, 0, 1])
        #expect(fused.encode("\u{E9}") == [2, 3])
    }

    @Test func postProcessorsAndOptions() throws {
        let base = """
        {"normalizer": null, "pre_tokenizer": null, "decoder": null, "added_tokens": [],
         "model": {"type": "BPE", "vocab": {"[CLS]": 0, "[SEP]": 1, "a": 2}, "merges": []}, "post_processor":
        """
        func make(_ post: String) throws -> Tokenizer { try Tokenizer(json: Data((base + post + "}").utf8)) }
        #expect(try make(#"{"type": "BertProcessing", "sep": ["[SEP]", 1], "cls": ["[CLS]", 0]}"#).encode("aa") == [0, 2, 2, 1])
        #expect(try make(#"{"type": "RobertaProcessing", "sep": ["[SEP]", 1], "cls": ["[CLS]", 0], "trim_offsets": true, "add_prefix_space": false}"#)
            .encode("a", addSpecialTokens: false) == [2])
        #expect(try make(#"{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}"#).encode("a") == [2])
        let seq = try make("""
            {"type": "Sequence", "processors": [{"type": "ByteLevel"},
             {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
              {"SpecialToken": {"id": "two", "type_id": 0}}], "pair": [],
              "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [0], "tokens": ["[CLS]"]}, "two": {"id": "two", "ids": [1, 1], "tokens": ["[SEP]", "[SEP]"]}}}]}
            """)
        #expect(seq.encode("a") == [0, 2, 1, 1])
        #expect(seq.encode("a", addSpecialTokens: false) == [2])
        #expect(seq.encode("") == [0, 1, 1])
        #expect(throws: EbbError.self) {
            _ = try make(#"{"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}], "pair": [], "special_tokens": {}}"#)
        }
        #expect(throws: EbbError.self) {
            _ = try make(#"{"type": "TemplateProcessing", "single": [{"Sequence": {"id": "B", "type_id": 0}}], "pair": [], "special_tokens": {}}"#)
        }
        #expect(throws: EbbError.self) { _ = try make(#"{"type": "Mystery"}"#) }
    }

    @Test func metaspaceOptionErrors() throws {
        func make(_ pre: String) throws -> Tokenizer {
            try Tokenizer(json: Data("""
            {"normalizer": null, "pre_tokenizer": \(pre), "decoder": null, "added_tokens": [], "post_processor": null,
             "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}
            """.utf8))
        }
        _ = try make(#"{"type": "Metaspace", "replacement": "▁", "add_prefix_space": true}"#)
        _ = try make(#"{"type": "Metaspace", "replacement": "▁", "add_prefix_space": false, "prepend_scheme": "never"}"#)
        #expect(throws: EbbError.self) { _ = try make(#"{"type": "Metaspace", "replacement": "▁", "add_prefix_space": false}"#) }
        #expect(throws: EbbError.self) { _ = try make(#"{"type": "Metaspace", "replacement": "▁▁"}"#) }
        #expect(throws: EbbError.self) { _ = try make(#"{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "sometimes"}"#) }
    }

    /// Byte-level tokenizers are untouched: no post-processor, so both encodes agree.
    @Test func byteLevelTokenizerAddsNothing() {
        let tok = Tokenizer.byteLevel()
        #expect(tok.encode("hi <|im_end|>") == tok.encode("hi <|im_end|>", addSpecialTokens: false))
    }
}
