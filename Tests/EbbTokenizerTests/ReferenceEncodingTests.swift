import EbbCore
import EbbTestSupport
import Foundation
import Testing
@testable import EbbTokenizer

/// The fixture tokenizer, loaded once.
let fixtureTokenizer: Result<Tokenizer, any Error> = Result {
    try Tokenizer.load(directory: Fixtures.url("tokenizer"))
}

/// UTF-8 bytes, for exact comparisons (Swift's `String ==` ignores NFC/NFD differences).
func utf8(_ s: String) -> [UInt8] { Array(s.utf8) }
func utf8(_ s: String?) -> [UInt8]? { s.map { Array($0.utf8) } }

struct ReferenceCase: Decodable {
    let text: String
    let ids: [Int]
    let decoded: String
}

struct ReferenceFile: Decodable {
    let vocab_size: Int
    let cases: [ReferenceCase]
}

func referenceCases() throws -> ReferenceFile {
    let data = try Data(contentsOf: Fixtures.url("tokenizer/reference_encodings.json"))
    return try JSONDecoder().decode(ReferenceFile.self, from: data)
}

@Suite struct ReferenceEncodingTests {
    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"))
    func encodesAndDecodesEveryReferenceCase() throws {
        let tok = try fixtureTokenizer.get()
        let file = try referenceCases()
        #expect(!file.cases.isEmpty)
        #expect(tok.vocabSize == file.vocab_size)
        for c in file.cases {
            let ids = tok.encode(c.text)
            #expect(ids == c.ids, "encode(\(c.text.debugDescription))")
            #expect(utf8(tok.decode(c.ids)) == utf8(c.decoded), "decode of \(c.text.debugDescription)")
        }
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"))
    func specialTokensAndConfig() throws {
        let tok = try fixtureTokenizer.get()
        #expect(tok.eosTokenId == 2)
        #expect(tok.bosTokenId == nil)
        #expect(tok.specialTokenIds == [0, 1, 2])
        #expect(tok.tokenId(for: "<|im_start|>") == 1)
        #expect(tok.token(for: 2) == "<|im_end|>")
        #expect(tok.tokenId(for: "Ġ") != nil)
        if let space = tok.tokenId(for: "Ġ") {
            #expect(tok.tokenBytes(for: space) == [0x20])
        }
        #expect(tok.token(for: -1) == nil)
        #expect(tok.token(for: 1 << 40) == nil)
        #expect(tok.tokenBytes(for: tok.vocabSize) == nil)
        // Special tokens are matched as whole tokens and can be skipped when decoding.
        let ids = tok.encode("<|im_start|>user\nhi<|im_end|>")
        #expect(ids.first == 1 && ids.last == 2)
        #expect(tok.decode(ids, skipSpecialTokens: true) == "user\nhi")
        // Unknown ids are skipped, never a crash.
        #expect(tok.decode([-5, 1 << 40, tok.vocabSize] + tok.encode("ok")) == "ok")
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"))
    func checkpointTokenizersMatchTheFixture() throws {
        let reference = try fixtureTokenizer.get()
        let file = try referenceCases()
        for name in Fixtures.checkpointNames {
            let tok = try Tokenizer.load(directory: Fixtures.url(name))
            #expect(tok.vocabSize == reference.vocabSize, "\(name)")
            for c in file.cases {
                #expect(tok.encode(c.text) == c.ids, "\(name): \(c.text.debugDescription)")
            }
        }
    }

    @Test(.enabled(if: Fixtures.enabled, "\(Fixtures.skipMessage)"))
    func loadFromDirectoryWithoutConfig() throws {
        let json = try Data(contentsOf: Fixtures.url("tokenizer/tokenizer.json"))
        let tok = try Tokenizer(json: json)
        #expect(tok.eosTokenId == nil)
        #expect(tok.encode("Hello, world!") == [42, 557, 336, 14, 312, 270, 1453, 3])
        // eos_token given as an object with "content".
        let config = Data(#"{"eos_token": {"content": "<|endoftext|>", "lstrip": false}, "bos_token": "<|im_start|>"}"#.utf8)
        let tok2 = try Tokenizer(json: json, config: config)
        #expect(tok2.eosTokenId == 0)
        #expect(tok2.bosTokenId == 1)
    }

    @Test func missingDirectoryThrows() {
        #expect(throws: EbbError.self) {
            _ = try Tokenizer.load(directory: URL(fileURLWithPath: "/nonexistent/ebb-tokenizer"))
        }
    }
}
