import EbbCore
import EbbTestSupport
import Foundation
import Testing
@testable import EbbTokenizer

@Suite struct ErrorTests {
    /// A minimal valid tokenizer.json with one stage replaced.
    static func minimal(_ overrides: [String: String] = [:]) -> Data {
        var parts: [String: String] = [
            "normalizer": "null",
            "pre_tokenizer": #"{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}"#,
            "decoder": #"{"type": "ByteLevel"}"#,
            "post_processor": "null",
            "model": #"{"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}"#,
            "added_tokens": "[]",
        ]
        for (k, v) in overrides { parts[k] = v }
        let body = parts.sorted { $0.key < $1.key }.map { "\"\($0.key)\": \($0.value)" }.joined(separator: ", ")
        return Data("{\(body)}".utf8)
    }

    func expectError(_ data: Data, mentioning needle: String, sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            _ = try Tokenizer(json: data)
            Issue.record("expected an error mentioning \(needle)", sourceLocation: sourceLocation)
        } catch let error as EbbError {
            #expect(error.code == .tokenizer, sourceLocation: sourceLocation)
            #expect(error.message.contains(needle), "\(error.message)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
        }
    }

    @Test func minimalTokenizerWorks() throws {
        let tok = try Tokenizer(json: Self.minimal())
        #expect(tok.encode("ab") == [2])
        #expect(tok.encode("aab") == [0, 2])
        #expect(tok.decode([0, 2, 1]) == "aabb")
        #expect(tok.vocabSize == 3)
        // Merges as pairs and ignore_merges.
        let pairs = try Tokenizer(json: Self.minimal(["model": #"{"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "bab": 3}, "merges": [["a", "b"]], "ignore_merges": true}"#]))
        #expect(pairs.encode("ab") == [2])
        #expect(pairs.encode("bab") == [3])
        #expect(pairs.encode("babb") == [1, 2, 1])
    }

    @Test func unsupportedStageTypesAreNamed() {
        expectError(Self.minimal(["pre_tokenizer": #"{"type": "Whitespace"}"#]),
                    mentioning: "unsupported pre_tokenizer type 'Whitespace'")
        expectError(Self.minimal(["pre_tokenizer": #"{"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": true}]}"#]),
                    mentioning: "unsupported pre_tokenizer type 'Digits'")
        expectError(Self.minimal(["normalizer": #"{"type": "BertNormalizer"}"#]),
                    mentioning: "unsupported normalizer type 'BertNormalizer'")
        expectError(Self.minimal(["normalizer": #"{"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "StripAccents"}]}"#]),
                    mentioning: "unsupported normalizer type 'StripAccents'")
        expectError(Self.minimal(["decoder": #"{"type": "WordPiece"}"#]),
                    mentioning: "unsupported decoder type 'WordPiece'")
        expectError(Self.minimal(["decoder": #"{"type": "Sequence", "decoders": [{"type": "ByteFallback"}, {"type": "CTC"}]}"#]),
                    mentioning: "unsupported decoder type 'CTC'")
        expectError(Self.minimal(["decoder": #"{"type": "Strip", "content": "ab", "start": 1, "stop": 0}"#]),
                    mentioning: "one character")
        expectError(Self.minimal(["post_processor": #"{"type": "Sequence", "processors": [{"type": "Mystery"}]}"#]),
                    mentioning: "unsupported post_processor type 'Mystery'")
        expectError(Self.minimal(["model": #"{"type": "Unigram", "vocab": []}"#]),
                    mentioning: "unsupported model type 'Unigram'")
        expectError(Self.minimal(["model": #"{"type": "BPE", "vocab": {"a": 0}, "merges": [], "byte_fallback": 1}"#]),
                    mentioning: "byte_fallback")
        expectError(Self.minimal(["pre_tokenizer": #"{"type": "Split", "pattern": {"Regex": "a"}, "behavior": "Sideways", "invert": false}"#]),
                    mentioning: "Sideways")
        expectError(Self.minimal(["pre_tokenizer": #"{"type": "Split", "pattern": {"Regex": "(unclosed"}, "behavior": "Isolated", "invert": false}"#]),
                    mentioning: "(unclosed")
    }

    @Test func malformedContentsAreErrors() {
        expectError(Data("".utf8), mentioning: "not valid JSON")
        expectError(Data("[1, 2]".utf8), mentioning: "expected a JSON object")
        expectError(Data("{}".utf8), mentioning: "model")
        expectError(Self.minimal(["model": #"{"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}"#]), mentioning: "\"b\"")
        expectError(Self.minimal(["model": #"{"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]}"#]), mentioning: "\"ab\"")
        expectError(Self.minimal(["model": #"{"type": "BPE", "vocab": {"a": 0}, "merges": ["ab"]}"#]), mentioning: "merges[0]")
        expectError(Self.minimal(["model": #"{"type": "BPE", "vocab": {"a": -1}, "merges": []}"#]), mentioning: "out of range")
        expectError(Self.minimal(["model": #"{"type": "BPE", "vocab": {"a": 1e300}, "merges": []}"#]), mentioning: "integer")
        expectError(Self.minimal(["model": #"{"type": "BPE", "vocab": {"a": 4294967296}, "merges": []}"#]), mentioning: "out of range")
        expectError(Self.minimal(["model": #"{"type": "BPE", "vocab": {"a": "0"}, "merges": []}"#]), mentioning: "integer")
        expectError(Self.minimal(["added_tokens": #"[{"id": 5}]"#]), mentioning: "added_tokens[0].content")
        expectError(Self.minimal(["added_tokens": #"[{"id": true, "content": "x"}]"#]), mentioning: "added_tokens[0].id")
        expectError(Data(String(repeating: "[", count: 100_000).utf8), mentioning: "not valid JSON")
        expectError(Data([0xFF, 0xFE, 0x00]), mentioning: "not valid JSON")
        #expect(throws: EbbError.self) { _ = try Tokenizer(json: Self.minimal(), config: Data("{\"eos_token\": 5}".utf8)) }
        #expect(throws: EbbError.self) { _ = try Tokenizer(json: Self.minimal(), config: Data("{".utf8)) }
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"))
    func truncatedAndGarbledFixtureNeverCrashes() throws {
        let data = try Data(contentsOf: Fixtures.url("tokenizer/tokenizer.json"))
        let bytes = [UInt8](data)
        // Truncations across the whole file, every length near the start and the end.
        var lengths = Set(stride(from: 0, to: bytes.count, by: 1009))
        for k in 0..<150 { lengths.insert(k); lengths.insert(max(0, bytes.count - 1 - k)) }
        for n in lengths.sorted() {
            #expect(throws: EbbError.self, "length \(n)") { _ = try Tokenizer(json: Data(bytes[..<n])) }
        }
        // Garbled: flip single bytes; the result may load or throw, but must not crash.
        var rng = SplitMix64(seed: 42)
        var loaded = 0
        for _ in 0..<60 {
            var copy = bytes
            let i = Int(rng.next() % UInt64(copy.count))
            copy[i] = UInt8(truncatingIfNeeded: rng.next())
            if let tok = try? Tokenizer(json: Data(copy)) {
                loaded += 1
                let ids = tok.encode("Hello, world! 🚀 <|im_end|>")
                _ = tok.decode(ids + [tok.vocabSize, -1])
            }
        }
        #expect(loaded < 60)
    }
}
