import EbbCore
import Foundation

/// Hugging Face `normalizers`: rewrite the text before it is split.
indirect enum Normalizer: Sendable {
    case nfc, nfd, nfkc, nfkd
    case lowercase
    case sequence([Normalizer])
    case replace(SplitPattern, String)
    case prepend(String)
    case strip(left: Bool, right: Bool)

    /// nil for a JSON null (no normalizer).
    static func parse(_ json: TokJSON?) throws -> Normalizer? {
        guard let json, !json.isNull else { return nil }
        let dict = try JSONAccess.object(json, "normalizer")
        let type = try JSONAccess.type(dict, "normalizer")
        switch type {
        case "NFC": return .nfc
        case "NFD": return .nfd
        case "NFKC": return .nfkc
        case "NFKD": return .nfkd
        case "Lowercase": return .lowercase
        case "Sequence":
            let items = try JSONAccess.array(dict["normalizers"], "normalizer Sequence.normalizers")
            return .sequence(try items.map { item in
                guard let n = try parse(item) else {
                    throw EbbError(.tokenizer, "normalizer Sequence: null entry")
                }
                return n
            })
        case "Replace":
            let pattern = try SplitPattern.parse(dict["pattern"], context: "normalizer Replace")
            return .replace(pattern, try JSONAccess.string(dict["content"], "normalizer Replace.content"))
        case "Prepend":
            return .prepend(try JSONAccess.string(dict["prepend"], "normalizer Prepend.prepend"))
        case "Strip":
            return .strip(left: try JSONAccess.bool(dict["strip_left"], default: true, "normalizer Strip.strip_left"),
                          right: try JSONAccess.bool(dict["strip_right"], default: true, "normalizer Strip.strip_right"))
        default:
            throw EbbError(.tokenizer, "unsupported normalizer type '\(type)'")
        }
    }

    /// Normalizes `text`; `keepsOrigin` is cleared when the result no longer starts with
    /// what was at the start of `text` (Hugging Face's alignments: a stripped or deleted
    /// start moves the original offset of the first character away from 0).
    func apply(_ text: String, keepsOrigin: inout Bool) -> String {
        switch self {
        case .sequence(let items):
            return items.reduce(text) { $1.apply($0, keepsOrigin: &keepsOrigin) }
        case .replace(let pattern, let content) where content.isEmpty:
            if let first = pattern.matches(in: text).first, first.lowerBound == 0, !first.isEmpty { keepsOrigin = false }
        case .strip(let left, _):
            if left, let f = text.unicodeScalars.first, f.properties.isWhitespace { keepsOrigin = false }
        default:
            break
        }
        return apply(text)
    }

    func apply(_ text: String) -> String {
        switch self {
        case .nfc:
            return Self.nfc(text)
        case .nfd:
            if text.utf8.allSatisfy({ $0 < 0x80 }) { return text }
            return text.decomposedStringWithCanonicalMapping
        case .nfkc:
            if text.utf8.allSatisfy({ $0 < 0x80 }) { return text }
            return text.precomposedStringWithCompatibilityMapping
        case .nfkd:
            if text.utf8.allSatisfy({ $0 < 0x80 }) { return text }
            return text.decomposedStringWithCompatibilityMapping
        case .lowercase:
            // Rust's `str::to_lowercase`: per-scalar full lowercase mapping (final sigma aside).
            var view = String.UnicodeScalarView()
            for s in text.unicodeScalars {
                if s.value < 0x80 {
                    view.append((s.value >= 0x41 && s.value <= 0x5A) ? Unicode.Scalar(s.value + 0x20) ?? s : s)
                } else {
                    view.append(contentsOf: s.properties.lowercaseMapping.unicodeScalars)
                }
            }
            return String(view)
        case .sequence(let items):
            return items.reduce(text) { $1.apply($0) }
        case .replace(let pattern, let content):
            return pattern.replaceAll(in: text, with: content)
        case .prepend(let prefix):
            return text.isEmpty ? text : prefix + text
        case .strip(let left, let right):
            var scalars = Substring(text).unicodeScalars[...]
            if left { while let f = scalars.first, f.properties.isWhitespace { scalars.removeFirst() } }
            if right { while let l = scalars.last, l.properties.isWhitespace { scalars.removeLast() } }
            return String(String.UnicodeScalarView(scalars))
        }
    }
}

extension Normalizer {
    /// One bit per BMP scalar: set when NFC leaves it alone wherever it appears.
    static let nfcInertBMP: [UInt64] = {
        var bits = [UInt64](repeating: 0, count: 1024)
        for r in nfcInertRanges where r.lowerBound < 0x10000 {
            for v in r.lowerBound...min(r.upperBound, 0xFFFF) { bits[Int(v >> 6)] |= 1 << UInt64(v & 63) }
        }
        return bits
    }()
    static let nfcInertAstral: [ClosedRange<UInt32>] = nfcInertRanges.filter { $0.lowerBound >= 0x10000 }

    /// Whether NFC leaves `v` alone wherever it appears (see `nfcInertRanges`).
    @inline(__always)
    static func isNFCInert(_ v: UInt32) -> Bool {
        if v < 0x80 { return true }
        if v < 0x10000 { return nfcInertBMP[Int(v >> 6)] & (1 << UInt64(v & 63)) != 0 }
        return nfcInertAstral.contains { $0.contains(v) }
    }

    /// NFC through Foundation, applied only to the stretches that hold a scalar that may
    /// change (with the starter before it): text between inert scalars normalizes on its own.
    static func nfc(_ text: String) -> String {
        let scalars = text.unicodeScalars
        guard let first = scalars.firstIndex(where: { !isNFCInert($0.value) }) else { return text }
        var out = String.UnicodeScalarView()
        var i = scalars.startIndex
        var pos = first
        while true {
            // Start the stretch at the inert scalar before `pos`, if any.
            var start = pos
            if start > i { start = scalars.index(before: start) }
            out.append(contentsOf: scalars[i..<start])
            var end = scalars.index(after: pos)
            while end < scalars.endIndex && !isNFCInert(scalars[end].value) { end = scalars.index(after: end) }
            let stretch = String(String.UnicodeScalarView(scalars[start..<end]))
            out.append(contentsOf: stretch.precomposedStringWithCanonicalMapping.unicodeScalars)
            i = end
            guard let next = scalars[end...].firstIndex(where: { !isNFCInert($0.value) }) else { break }
            pos = next
        }
        out.append(contentsOf: scalars[i...])
        return String(out)
    }
}

extension SplitPattern {
    var isLiteral: Bool { if case .literal = self { return true } else { return false } }

    /// Every match replaced by `content` (Hugging Face `NormalizedString::replace`: an empty
    /// string pattern matches nothing, empty regex matches insert `content`).
    func replaceAll(in text: String, with content: String) -> String {
        let matches = self.matches(in: text)
        if matches.isEmpty { return text }
        let bytes = Array(text.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var prev = 0
        for m in matches where !(m.isEmpty && isLiteral) {
            out.append(contentsOf: bytes[prev..<m.lowerBound])
            out.append(contentsOf: content.utf8)
            prev = m.upperBound
        }
        out.append(contentsOf: bytes[prev...])
        return String(decoding: out, as: UTF8.self)
    }
}
