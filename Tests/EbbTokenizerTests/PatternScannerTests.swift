import Foundation
import Testing
@testable import EbbTokenizer

/// The hand-written scanners must agree with the general regex path on any input.
@Suite struct PatternScannerTests {
    /// No "ſ": Oniguruma's `(?i)` folds it to "s" (the scanners do, as HFReferenceData
    /// checks), Swift Regex does not.
    static let pool: [Unicode.Scalar] = [
        "a", "b", "Z", "s", "S", "t", "l", "L", "d", "m", "r", "e", "v", "'", "'", " ", " ", " ", "\n", "\r", "\t",
        "1", "9", ".", ",", "!", "-", "_", "\u{A0}", "\u{3000}", "\u{2028}", "\u{85}", "\u{B}", "\u{C}", "\u{200B}",
        "é", "\u{301}", "ß", "K", "中", "あ", "½", "Ⅷ", "٣", "²", "🚀", "\u{1F3FD}", "\u{0}", "\u{7F}", "Σ", "ǅ",
    ]

    static func randomText(_ rng: inout SplitMix64, maxLength: Int) -> String {
        var v = String.UnicodeScalarView()
        for _ in 0..<Int(rng.next() % UInt64(maxLength + 1)) { v.append(pool[Int(rng.next() % UInt64(pool.count))]) }
        return String(v)
    }

    @Test(arguments: [KnownPattern.gpt2Source, KnownPattern.qwen2Source, KnownPattern.llama3Source])
    func scannerAgreesWithSwiftRegex(source: String) throws {
        let known = try SplitPattern.regex(source)
        guard case .known = known else {
            Issue.record("pattern not recognized")
            return
        }
        let general = try SplitPattern.swiftRegex(source)
        var rng = SplitMix64(seed: 99)
        for _ in 0..<1500 {
            let text = Self.randomText(&rng, maxLength: 16)
            #expect(known.matches(in: text) == general.matches(in: text), "\(text.debugDescription)")
        }
    }

    @Test func splitBehaviors() {
        // "a-b--c" with "-" matches at 1, 3, 4.
        let matches = SplitPattern.literalMatches(Array("-".utf8), in: Array("a-b--c".utf8)[...])
        #expect(matches == [1..<2, 3..<4, 4..<5])
        func pieces(_ b: SplitBehavior, invert: Bool = false) -> [String] {
            let bytes = Array("a-b--c".utf8)
            return PreTokenizer.split(matches: matches, length: bytes.count, behavior: b, invert: invert)
                .map { String(decoding: bytes[$0], as: UTF8.self) }
        }
        #expect(pieces(.removed) == ["a", "b", "c"])
        #expect(pieces(.isolated) == ["a", "-", "b", "-", "-", "c"])
        #expect(pieces(.mergedWithPrevious) == ["a-", "b-", "-", "c"])
        #expect(pieces(.mergedWithNext) == ["a", "-b", "-", "-c"])
        #expect(pieces(.contiguous) == ["a", "-", "b", "--", "c"])
        #expect(pieces(.removed, invert: true) == ["-", "-", "-"])
    }

    @Test func onigurumaEscapesAreTranslated() {
        #expect(SplitPattern.onigurumaToSwift(#"\d+"#) == #"\p{Nd}+"#)
        #expect(SplitPattern.onigurumaToSwift(#"[\d\s]\\d"#) == #"[\p{Nd}\s]\\d"#)
        #expect(SplitPattern.onigurumaToSwift(#"\w[\w]"#) == #"[\p{L}\p{M}\p{Nd}\p{Pc}][\p{L}\p{M}\p{Nd}\p{Pc}]"#)
    }
}
