import EbbCore

/// How a `Split` pre-tokenizer treats what its pattern matched.
enum SplitBehavior: String, Sendable {
    case removed = "Removed"
    case isolated = "Isolated"
    case mergedWithPrevious = "MergedWithPrevious"
    case mergedWithNext = "MergedWithNext"
    case contiguous = "Contiguous"
}

/// Hugging Face `pre_tokenizers`: cut normalized text into pieces the model sees one by one.
indirect enum PreTokenizer: Sendable {
    case split(SplitPattern, SplitBehavior, invert: Bool)
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    case sequence([PreTokenizer])

    static func parse(_ json: TokJSON?) throws -> PreTokenizer? {
        guard let json, !json.isNull else { return nil }
        let dict = try JSONAccess.object(json, "pre_tokenizer")
        let type = try JSONAccess.type(dict, "pre_tokenizer")
        switch type {
        case "Split":
            let pattern = try SplitPattern.parse(dict["pattern"], context: "pre_tokenizer Split")
            let name = try JSONAccess.string(dict["behavior"], "pre_tokenizer Split.behavior")
            guard let behavior = SplitBehavior(rawValue: name) else {
                throw EbbError(.tokenizer, "unsupported Split behavior '\(name)'")
            }
            return .split(pattern, behavior,
                          invert: try JSONAccess.bool(dict["invert"], default: false, "pre_tokenizer Split.invert"))
        case "ByteLevel":
            return .byteLevel(
                addPrefixSpace: try JSONAccess.bool(dict["add_prefix_space"], default: true, "pre_tokenizer ByteLevel.add_prefix_space"),
                useRegex: try JSONAccess.bool(dict["use_regex"], default: true, "pre_tokenizer ByteLevel.use_regex"))
        case "Sequence":
            let items = try JSONAccess.array(dict["pretokenizers"], "pre_tokenizer Sequence.pretokenizers")
            return .sequence(try items.map { item in
                guard let p = try parse(item) else { throw EbbError(.tokenizer, "pre_tokenizer Sequence: null entry") }
                return p
            })
        default:
            throw EbbError(.tokenizer, "unsupported pre_tokenizer type '\(type)'")
        }
    }

    /// Splits every piece; empty pieces are dropped (as Hugging Face does).
    func apply(_ pieces: [String]) -> [String] {
        switch self {
        case .sequence(let items):
            return items.reduce(pieces) { $1.apply($0) }
        case .split(let pattern, let behavior, let invert):
            var out: [String] = []
            for piece in pieces {
                let bytes = Array(piece.utf8)
                for r in Self.split(matches: pattern.matches(in: piece), length: bytes.count,
                                    behavior: behavior, invert: invert) {
                    out.append(String(decoding: bytes[r], as: UTF8.self))
                }
            }
            return out
        case .byteLevel(let addPrefixSpace, let useRegex):
            var out: [String] = []
            out.reserveCapacity(pieces.count)
            for var piece in pieces where !piece.isEmpty {
                if addPrefixSpace && piece.utf8.first != 0x20 { piece = " " + piece }
                if useRegex {
                    let scanned = ScannedText(piece)
                    let bytes = Array(piece.utf8)
                    for r in KnownPattern.gpt2.matches(scanned) where !r.isEmpty {
                        out.append(ByteLevelAlphabet.encode(
                            String(decoding: bytes[scanned.offsets[r.lowerBound]..<scanned.offsets[r.upperBound]], as: UTF8.self)))
                    }
                } else if !piece.isEmpty {
                    out.append(ByteLevelAlphabet.encode(piece))
                }
            }
            return out
        }
    }

    /// Hugging Face's `NormalizedString::split`: matches become segments, combined per
    /// `behavior`; returns the non-empty kept ranges.
    static func split(matches: [Range<Int>], length: Int, behavior: SplitBehavior, invert: Bool) -> [Range<Int>] {
        guard length > 0 else { return [] }
        var segments: [(Range<Int>, Bool)] = []
        var prev = 0
        for m in matches {
            if prev != m.lowerBound { segments.append((prev..<m.lowerBound, false)) }
            segments.append((m, true))
            prev = m.upperBound
        }
        if prev != length { segments.append((prev..<length, false)) }
        if invert { segments = segments.map { ($0.0, !$0.1) } }

        var kept: [Range<Int>] = []
        switch behavior {
        case .isolated:
            kept = segments.map(\.0)
        case .removed:
            kept = segments.filter { !$0.1 }.map(\.0)
        case .mergedWithPrevious:
            var previousMatch = false
            for (r, isMatch) in segments {
                if isMatch && !previousMatch, let last = kept.last {
                    kept[kept.count - 1] = last.lowerBound..<r.upperBound
                } else {
                    kept.append(r)
                }
                previousMatch = isMatch
            }
        case .mergedWithNext:
            var previousMatch = false
            for (r, isMatch) in segments.reversed() {
                if isMatch && !previousMatch, let last = kept.last {
                    kept[kept.count - 1] = r.lowerBound..<last.upperBound
                } else {
                    kept.append(r)
                }
                previousMatch = isMatch
            }
            kept.reverse()
        case .contiguous:
            var previousMatch = false
            for (r, isMatch) in segments {
                if isMatch == previousMatch, let last = kept.last {
                    kept[kept.count - 1] = last.lowerBound..<r.upperBound
                } else {
                    kept.append(r)
                }
                previousMatch = isMatch
            }
        }
        return kept.filter { !$0.isEmpty }
    }
}
