import Foundation
import Testing
@testable import EbbCheckpoint

/// Random damage to a valid file must give either a file that opens (and whose entries are
/// all inside it) or a thrown `CheckpointError` — never a crash.
@Suite struct SafeTensorsFuzzTests {
    static let snippets: [String] = [
        "{", "}", "[", "]", ",", ":", "\"", "\\", "\\u", "\\ud800", "\\udc00\\ud800", "null", "true", "-",
        "-1", "0", "1.5", "1e400", "-0", "00", "99999999999999999999", "9223372036854775807", "4294967296",
        "\"F8_E9\"", "\"BF16\"", "\"I64\"", "\"BOOL\"", "\"shape\"", "\"dtype\"", "\"data_offsets\"", "\"__metadata__\"",
        "[0,0]", "[1,0]", "[]", "{}", "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
        "\u{0}", "\u{7f}", "é", "\u{FFFF}", " ", "\n", "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},",
    ]

    func outcome(_ bytes: [UInt8]) -> Bool {
        do {
            let f = try SafeTensorsFile(bytes: bytes, name: "fuzz")
            for (_, e) in f.entries {
                #expect(e.byteRange.lowerBound >= 8 && e.byteRange.upperBound <= bytes.count)
                #expect(e.byteRange.count == e.elementCount * e.dtype.byteSize)
                let raw = f.rawBytes(e)
                #expect(raw.count == e.byteRange.count)
                if StorageDType.floatReadable.contains(e.dtype) { _ = try f.floats(e.name) }
                if StorageDType.intReadable.contains(e.dtype) { _ = try f.ints(e.name) }
            }
            return true
        } catch {
            #expect(!error.description.isEmpty)
            return false
        }
    }

    @Test func randomDamageNeverCrashes() throws {
        let valid = try SafeTensorsWriter.serialize(sampleTensors(), metadata: ["format": "pt"])
        var n = 0
        for k in 0..<8 { n |= Int(valid[k]) << (8 * k) }
        var rng = SplitMix64(seed: 0xEBB_5AFE)
        var opened = 0, rejected = 0
        let dir = try makeTempDir("fuzz"); defer { removeDir(dir) }

        for iteration in 0..<4000 {
            var bytes = valid
            switch iteration % 5 {
            case 0: // truncate
                bytes = Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &rng)))
            case 1: // flip bytes in the length field or header
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    let at = Int.random(in: 0..<(8 + n), using: &rng)
                    bytes[at] ^= UInt8.random(in: 1...255, using: &rng)
                }
            case 2: // splice a JSON fragment into the header and fix the length
                var header = Array(bytes[8..<(8 + n)])
                for _ in 0..<Int.random(in: 1...3, using: &rng) {
                    let snippet = Array(Self.snippets.randomElement(using: &rng)!.utf8)
                    let at = Int.random(in: 0...header.count, using: &rng)
                    let cut = Int.random(in: 0...min(6, header.count - at), using: &rng)
                    header.replaceSubrange(at..<(at + cut), with: snippet)
                }
                let len = UInt64(header.count)
                bytes = (0..<8).map { UInt8(truncatingIfNeeded: len >> (8 * UInt64($0))) } + header + Array(valid[(8 + n)...])
            case 3: // replace a number in the header by a random one
                var text = String(decoding: bytes[8..<(8 + n)], as: UTF8.self)
                let digits = text.indices.filter { text[$0].isNumber }
                if let at = digits.randomElement(using: &rng) {
                    let candidates = ["-3", "18446744073709551615", "7", String(Int.random(in: 0...400, using: &rng)), "1.0", "2e3"]
                    text.replaceSubrange(at...at, with: candidates.randomElement(using: &rng)!)
                }
                let header = Array(text.utf8)
                let len = UInt64(header.count)
                bytes = (0..<8).map { UInt8(truncatingIfNeeded: len >> (8 * UInt64($0))) } + header + Array(valid[(8 + n)...])
            default: // random header length, random garbage
                let len = UInt64.random(in: 0...UInt64(bytes.count + 16), using: &rng)
                for k in 0..<8 { bytes[k] = UInt8(truncatingIfNeeded: len >> (8 * UInt64(k))) }
                if Bool.random(using: &rng) {
                    bytes += (0..<Int.random(in: 0...32, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                }
            }
            if outcome(bytes) { opened += 1 } else { rejected += 1 }
            // Every 40th case also through the mmap path.
            if iteration % 40 == 0 {
                let url = dir.appendingPathComponent("f\(iteration).safetensors")
                try writeBytes(bytes, to: url)
                do { _ = try SafeTensorsFile(url: url) } catch { #expect(!error.description.isEmpty) }
            }
        }
        #expect(opened + rejected == 4000)
        #expect(opened > 0 && rejected > 0)
    }

    @Test func randomJSONHeadersNeverCrash() {
        var rng = SplitMix64(seed: 42)
        func value(_ depth: Int) -> String {
            switch Int.random(in: 0..<(depth > 4 ? 4 : 8), using: &rng) {
            case 0: return String(Int.random(in: -5...20, using: &rng))
            case 1: return Self.snippets.randomElement(using: &rng)!
            case 2: return ["\"F32\"", "\"BF16\"", "\"I32\"", "\"x\""].randomElement(using: &rng)!
            case 3: return "null"
            case 4, 5:
                let keys = ["dtype", "shape", "data_offsets", "__metadata__", "t"]
                return "{" + (0..<Int.random(in: 0...3, using: &rng)).map { _ in
                    "\"\(keys.randomElement(using: &rng)!)\":\(value(depth + 1))"
                }.joined(separator: ",") + "}"
            default:
                return "[" + (0..<Int.random(in: 0...3, using: &rng)).map { _ in value(depth + 1) }.joined(separator: ",") + "]"
            }
        }
        for _ in 0..<2000 {
            let header = "{\"t\":\(value(1))}"
            _ = outcome(image(header: header, data: Array(repeating: 0, count: Int.random(in: 0...24, using: &rng))))
        }
    }
}
