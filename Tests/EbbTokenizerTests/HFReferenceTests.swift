import EbbCore
import EbbTestSupport
import Foundation
import Testing
@testable import EbbTokenizer

/// Differential tests against outputs of Hugging Face `tokenizers` (HFReferenceData.swift):
/// the fixture tokenizer and variants of it with other pre-tokenizers, normalizers and added
/// tokens.
@Suite struct HFReferenceTests {
    static var reference: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(hfReferenceJSON.utf8))) as? [String: Any] ?? [:]
    }

    /// The fixture tokenizer.json with top-level keys replaced.
    static func fixtureVariant(_ overrides: [String: Any]) throws -> Tokenizer {
        let data = try Data(contentsOf: Fixtures.url("tokenizer/tokenizer.json"))
        var root = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        for (k, v) in overrides { root[k] = v }
        return try Tokenizer(json: try JSONSerialization.data(withJSONObject: root))
    }

    static func cases(_ value: Any?) -> [[String: Any]] { value as? [[String: Any]] ?? [] }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"))
    func encodingsMatch() throws {
        let tok = try fixtureTokenizer.get()
        let cases = Self.cases(Self.reference["encodings"])
        #expect(cases.count > 100)
        for c in cases {
            let text = try #require(c["text"] as? String)
            let ids = try #require(c["ids"] as? [Int])
            #expect(tok.encode(text) == ids, "\(text.debugDescription)")
        }
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"))
    func decodingsMatch() throws {
        let tok = try fixtureTokenizer.get()
        let cases = Self.cases(Self.reference["decodings"])
        #expect(cases.count > 10)
        for c in cases {
            let ids = try #require(c["ids"] as? [Int])
            #expect(utf8(tok.decode(ids)) == utf8(c["text"] as? String), "\(ids)")
            #expect(utf8(tok.decode(ids, skipSpecialTokens: true)) == utf8(c["skipped"] as? String), "\(ids)")
            // The incremental detokenizer agrees with decode, also for invalid UTF-8.
            var inc = IncrementalDetokenizer(tokenizer: tok)
            var streamed = ""
            for id in ids { streamed += inc.append(id) }
            streamed += inc.finish()
            #expect(utf8(streamed) == utf8(c["text"] as? String), "\(ids)")
        }
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"))
    func preTokenizerVariantsMatch() throws {
        let variants = try #require(Self.reference["pre_tokenizers"] as? [String: [String: Any]])
        #expect(variants.count > 20)
        for (name, variant) in variants.sorted(by: { $0.key < $1.key }) {
            let tok = try Self.fixtureVariant(["pre_tokenizer": variant["pre_tokenizer"] as Any])
            let pre = try #require(tok.preTokenizer)
            for c in Self.cases(variant["cases"]) {
                let text = try #require(c["text"] as? String)
                #expect(pre.apply([text]).map(utf8) == (c["pieces"] as? [String])?.map(utf8), "\(name): \(text.debugDescription)")
                #expect(tok.encode(text) == c["ids"] as? [Int], "\(name): \(text.debugDescription)")
            }
        }
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"))
    func normalizerVariantsMatch() throws {
        let variants = try #require(Self.reference["normalizers"] as? [String: [String: Any]])
        #expect(variants.count >= 6)
        for (name, variant) in variants.sorted(by: { $0.key < $1.key }) {
            let tok = try Self.fixtureVariant(["normalizer": variant["normalizer"] ?? NSNull()])
            for c in Self.cases(variant["cases"]) {
                let text = try #require(c["text"] as? String)
                #expect(tok.encode(text) == c["ids"] as? [Int], "\(name): \(text.debugDescription)")
            }
        }
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"))
    func addedTokenOptionsMatch() throws {
        let section = try #require(Self.reference["added_tokens"] as? [String: Any])
        let tok = try Self.fixtureVariant([
            "added_tokens": section["added_tokens"] as Any, "normalizer": section["normalizer"] as Any,
        ])
        for c in Self.cases(section["cases"]) {
            let text = try #require(c["text"] as? String)
            #expect(tok.encode(text) == c["ids"] as? [Int], "\(text.debugDescription)")
        }
        for c in Self.cases(section["decodings"]) {
            let ids = try #require(c["ids"] as? [Int])
            #expect(utf8(tok.decode(ids)) == utf8(c["text"] as? String), "\(ids)")
            #expect(utf8(tok.decode(ids, skipSpecialTokens: true)) == utf8(c["skipped"] as? String), "\(ids)")
        }
    }
}
