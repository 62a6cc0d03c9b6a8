import EbbCore

/// Hugging Face `models.BPE`: a vocabulary and ranked merges applied to each piece.
struct BPEModel: Sendable {
    /// Keys compare by UTF-8 bytes (Swift's `String ==` would merge canonically equivalent tokens).
    let vocab: [ExactString: Int]
    /// Id of each byte's alphabet character as a token of its own (-1 when absent), for
    /// byte-level pieces without prefix/suffix decorations.
    let byteIds: [Int]
    /// (left id << 32 | right id) → (rank << 32 | merged id).
    let merges: [UInt64: UInt64]
    let unkId: Int?
    let fuseUnk: Bool
    /// `byte_fallback`: a character missing from the vocabulary becomes the tokens
    /// `<0xXX>` of its UTF-8 bytes (when all of them exist).
    let byteFallback: Bool
    /// Id of `<0xXX>` for each byte (-1 when absent); empty without `byte_fallback`.
    let byteFallbackIds: [Int]
    /// Ids of the one-scalar tokens, by scalar value (the initial symbols of a word when
    /// there is no subword prefix or word suffix).
    let scalarIds: [UInt32: Int]
    let continuingSubwordPrefix: String?
    let endOfWordSuffix: String?
    let ignoreMerges: Bool

    static func parse(_ json: TokJSON?) throws -> BPEModel {
        let dict = try JSONAccess.object(json, "model")
        if let t = dict["type"], !t.isNull {
            let type = try JSONAccess.string(t, "model.type")
            guard type == "BPE" else { throw EbbError(.tokenizer, "unsupported model type '\(type)'") }
        } else if dict["merges"] == nil {
            throw EbbError(.tokenizer, "unsupported model: no \"type\" and no BPE merges")
        }
        var vocab: [ExactString: Int] = [:]
        let vocabJSON = try JSONAccess.object(dict["vocab"], "model.vocab")
        vocab.reserveCapacity(vocabJSON.count)
        for (token, value) in vocabJSON.entries {
            let id = try JSONAccess.int(value, "model.vocab[\"\(token)\"]")
            guard id >= 0, id < Tokenizer.maxVocabSize else {
                throw EbbError(.tokenizer, "model.vocab: id \(id) of \"\(token)\" is out of range")
            }
            vocab[ExactString(token)] = id
        }
        let prefix = try JSONAccess.optionalString(dict["continuing_subword_prefix"], "model.continuing_subword_prefix")
        let suffix = try JSONAccess.optionalString(dict["end_of_word_suffix"], "model.end_of_word_suffix")

        var merges: [UInt64: UInt64] = [:]
        let mergesJSON = try JSONAccess.array(dict["merges"] ?? .array([]), "model.merges")
        merges.reserveCapacity(mergesJSON.count)
        for (rank, entry) in mergesJSON.enumerated() {
            let a: String, b: String
            switch entry {
            case .string(let line):
                // Split at the first space byte (not Character: "e \u{301}" is one grapheme).
                let bytes = Array(line.utf8)
                guard let space = bytes.firstIndex(of: 0x20) else {
                    throw EbbError(.tokenizer, "model.merges[\(rank)]: \"\(line)\" is not two tokens separated by a space")
                }
                a = String(decoding: bytes[..<space], as: UTF8.self)
                b = String(decoding: bytes[(space + 1)...], as: UTF8.self)
            case .array(let pair):
                guard pair.count == 2 else { throw EbbError(.tokenizer, "model.merges[\(rank)]: expected a pair") }
                a = try JSONAccess.string(pair[0], "model.merges[\(rank)][0]")
                b = try JSONAccess.string(pair[1], "model.merges[\(rank)][1]")
            default:
                throw EbbError(.tokenizer, "model.merges[\(rank)]: expected a string or a pair")
            }
            guard let aId = vocab[ExactString(a)] else { throw EbbError(.tokenizer, "merge token \"\(a)\" is not in the vocabulary") }
            guard let bId = vocab[ExactString(b)] else { throw EbbError(.tokenizer, "merge token \"\(b)\" is not in the vocabulary") }
            var tail = b
            if let prefix, !prefix.isEmpty, b.utf8.starts(with: prefix.utf8) {
                tail = String(decoding: Array(b.utf8).dropFirst(prefix.utf8.count), as: UTF8.self)
            }
            let merged = a + tail
            guard let newId = vocab[ExactString(merged)] else {
                throw EbbError(.tokenizer, "merged token \"\(merged)\" is not in the vocabulary")
            }
            merges[UInt64(aId) << 32 | UInt64(bId)] = UInt64(rank) << 32 | UInt64(newId)
        }

        var unkId: Int?
        if let unk = try JSONAccess.optionalString(dict["unk_token"], "model.unk_token") { unkId = vocab[ExactString(unk)] }
        return BPEModel(
            vocab: vocab, merges: merges, unkId: unkId,
            fuseUnk: try JSONAccess.bool(dict["fuse_unk"], default: false, "model.fuse_unk"),
            byteFallback: try JSONAccess.bool(dict["byte_fallback"], default: false, "model.byte_fallback"),
            continuingSubwordPrefix: prefix, endOfWordSuffix: suffix,
            ignoreMerges: try JSONAccess.bool(dict["ignore_merges"], default: false, "model.ignore_merges"))
    }

    init(vocab: [ExactString: Int], merges: [UInt64: UInt64], unkId: Int?, fuseUnk: Bool, byteFallback: Bool = false,
         continuingSubwordPrefix: String?, endOfWordSuffix: String?, ignoreMerges: Bool) {
        self.vocab = vocab
        self.merges = merges
        self.unkId = unkId
        self.fuseUnk = fuseUnk
        self.byteFallback = byteFallback
        byteFallbackIds = byteFallback ? (0..<256).map { vocab[ExactString(Self.byteToken(UInt8($0)))] ?? -1 } : []
        var single: [UInt32: Int] = [:]
        for (token, id) in vocab {
            var it = token.string.unicodeScalars.makeIterator()
            if let first = it.next(), it.next() == nil { single[first.value] = id }
        }
        scalarIds = single
        self.continuingSubwordPrefix = continuingSubwordPrefix
        self.endOfWordSuffix = endOfWordSuffix
        self.ignoreMerges = ignoreMerges
        byteIds = (0..<256).map { vocab[ExactString(ByteLevelAlphabet.scalarString(UInt8($0)))] ?? -1 }
    }

    /// The byte-fallback token of a byte: `<0x0A>` (Rust's `format!("<{b:#04X}>")`).
    static func byteToken(_ b: UInt8) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        return String(decoding: [0x3C, 0x30, 0x78, hex[Int(b >> 4)], hex[Int(b & 15)], 0x3E], as: UTF8.self)
    }

    /// Ids of a byte-level piece given by its raw bytes (each byte one alphabet character).
    func tokenize(mappedBytes bytes: ArraySlice<UInt8>) -> [Int] {
        let plain = (continuingSubwordPrefix ?? "").isEmpty && (endOfWordSuffix ?? "").isEmpty && !ignoreMerges
            && !byteFallback
        guard plain else {
            return tokenize(String(decoding: ByteLevelAlphabet.encode(bytes: bytes), as: UTF8.self))
        }
        if bytes.count == 1, let b = bytes.first, byteIds[Int(b)] >= 0 { return [byteIds[Int(b)]] }
        var ids: [Int] = []
        ids.reserveCapacity(bytes.count)
        var lastWasUnk = false
        for b in bytes {
            let id = byteIds[Int(b)]
            if id >= 0 {
                ids.append(id)
                lastWasUnk = false
            } else if let unkId {
                if !(fuseUnk && lastWasUnk) { ids.append(unkId) }
                lastWasUnk = true
            }
        }
        return merge(ids)
    }

    /// Ids of one pre-tokenized piece (Hugging Face `BPE::merge_word`).
    func tokenize(_ word: String) -> [Int] {
        if ignoreMerges, let id = vocab[ExactString(word)] { return [id] }
        // Initial symbols: one per Unicode scalar.
        var ids: [Int] = []
        ids.reserveCapacity(word.utf8.count)
        let scalars = Array(word.unicodeScalars)
        // An unknown character waits here until a known one (or the end) arrives; fused
        // unknowns extend it. Byte-fallback tokens are added at once, ahead of a waiting
        // unknown, exactly as Hugging Face orders them.
        var pendingUnk = false
        let plain = (continuingSubwordPrefix ?? "").isEmpty && (endOfWordSuffix ?? "").isEmpty
        for (i, s) in scalars.enumerated() {
            if plain, let id = scalarIds[s.value] {
                if pendingUnk, let unkId { ids.append(unkId) }
                pendingUnk = false
                ids.append(id)
                continue
            }
            var piece = String(Character(s))
            if i > 0, let p = continuingSubwordPrefix { piece = p + piece }
            if i == scalars.count - 1, let suffix = endOfWordSuffix { piece += suffix }
            if let id = vocab[ExactString(piece)] {
                if pendingUnk, let unkId { ids.append(unkId) }
                pendingUnk = false
                ids.append(id)
                continue
            }
            if byteFallback, appendByteFallback(piece, to: &ids) { continue }
            if let unkId {
                if pendingUnk && !fuseUnk { ids.append(unkId) }
                pendingUnk = true
            }
        }
        if pendingUnk, let unkId { ids.append(unkId) }
        return merge(ids)
    }

    /// Appends the `<0xXX>` ids of the bytes of `piece`; false (nothing appended) when one
    /// of them is not in the vocabulary.
    private func appendByteFallback(_ piece: String, to ids: inout [Int]) -> Bool {
        for b in piece.utf8 where byteFallbackIds[Int(b)] < 0 { return false }
        for b in piece.utf8 { ids.append(byteFallbackIds[Int(b)]) }
        return true
    }

    /// Applies merges lowest rank first (leftmost among equal ranks), like Hugging Face.
    func merge(_ initial: [Int]) -> [Int] {
        let n = initial.count
        guard n > 1, !merges.isEmpty else { return initial }
        var ids = initial
        var next = Array(1...n)
        next[n - 1] = -1
        var prev = Array(-1..<(n - 1))
        var alive = [Bool](repeating: true, count: n)
        var heap = MergeHeap()

        @inline(__always) func lookup(_ a: Int, _ b: Int) -> UInt64? { merges[UInt64(a) << 32 | UInt64(b)] }
        for i in 0..<(n - 1) {
            if let m = lookup(ids[i], ids[i + 1]) {
                heap.push(MergeCandidate(rank: Int(m >> 32), pos: i, left: ids[i], right: ids[i + 1], newId: Int(m & 0xFFFF_FFFF)))
            }
        }
        while let c = heap.pop() {
            let pos = c.pos
            guard alive[pos], ids[pos] == c.left else { continue }
            let r = next[pos]
            guard r >= 0, ids[r] == c.right else { continue }
            ids[pos] = c.newId
            alive[r] = false
            let rr = next[r]
            next[pos] = rr
            if rr >= 0 { prev[rr] = pos }
            let p = prev[pos]
            if p >= 0, let m = lookup(ids[p], ids[pos]) {
                heap.push(MergeCandidate(rank: Int(m >> 32), pos: p, left: ids[p], right: ids[pos], newId: Int(m & 0xFFFF_FFFF)))
            }
            if rr >= 0, let m = lookup(ids[pos], ids[rr]) {
                heap.push(MergeCandidate(rank: Int(m >> 32), pos: pos, left: ids[pos], right: ids[rr], newId: Int(m & 0xFFFF_FFFF)))
            }
        }
        var out: [Int] = []
        var i = 0
        while i >= 0 {
            out.append(ids[i])
            i = next[i]
        }
        return out
    }
}

struct MergeCandidate {
    var rank: Int
    var pos: Int
    var left: Int
    var right: Int
    var newId: Int

    @inline(__always) static func before(_ a: MergeCandidate, _ b: MergeCandidate) -> Bool {
        a.rank != b.rank ? a.rank < b.rank : a.pos < b.pos
    }
}

/// Binary min-heap ordered by (rank, position).
struct MergeHeap {
    var items: [MergeCandidate] = []

    mutating func push(_ c: MergeCandidate) {
        items.append(c)
        var i = items.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            guard MergeCandidate.before(items[i], items[p]) else { break }
            items.swapAt(i, p)
            i = p
        }
    }

    mutating func pop() -> MergeCandidate? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            let n = items.count
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < n && MergeCandidate.before(items[l], items[m]) { m = l }
                if r < n && MergeCandidate.before(items[r], items[m]) { m = r }
                if m == i { break }
                items.swapAt(i, m)
                i = m
            }
        }
        return top
    }
}

/// A string that compares and hashes by its UTF-8 bytes, not by canonical equivalence.
struct ExactString: Hashable, Sendable {
    let string: String

    init(_ string: String) { self.string = string }

    static func == (a: ExactString, b: ExactString) -> Bool {
        a.string.utf8.elementsEqual(b.string.utf8)
    }

    func hash(into hasher: inout Hasher) {
        var s = string
        s.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
    }
}
