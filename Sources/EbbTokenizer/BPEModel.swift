import EbbCore

/// Hugging Face `models.BPE`: a vocabulary and ranked merges applied to each piece.
struct BPEModel: Sendable {
    let vocab: [String: Int]
    /// (left id << 32 | right id) → (rank << 32 | merged id).
    let merges: [UInt64: UInt64]
    let unkId: Int?
    let fuseUnk: Bool
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
        if try JSONAccess.bool(dict["byte_fallback"], default: false, "model.byte_fallback") {
            throw EbbError(.tokenizer, "unsupported BPE option 'byte_fallback'")
        }
        var vocab: [String: Int] = [:]
        let vocabJSON = try JSONAccess.object(dict["vocab"], "model.vocab")
        vocab.reserveCapacity(vocabJSON.count)
        for (token, value) in vocabJSON {
            let id = try JSONAccess.int(value, "model.vocab[\"\(token)\"]")
            guard id >= 0, id < Tokenizer.maxVocabSize else {
                throw EbbError(.tokenizer, "model.vocab: id \(id) of \"\(token)\" is out of range")
            }
            vocab[token] = id
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
                guard let space = line.firstIndex(of: " ") else {
                    throw EbbError(.tokenizer, "model.merges[\(rank)]: \"\(line)\" is not two tokens separated by a space")
                }
                a = String(line[..<space])
                b = String(line[line.index(after: space)...])
            case .array(let pair):
                guard pair.count == 2 else { throw EbbError(.tokenizer, "model.merges[\(rank)]: expected a pair") }
                a = try JSONAccess.string(pair[0], "model.merges[\(rank)][0]")
                b = try JSONAccess.string(pair[1], "model.merges[\(rank)][1]")
            default:
                throw EbbError(.tokenizer, "model.merges[\(rank)]: expected a string or a pair")
            }
            guard let aId = vocab[a] else { throw EbbError(.tokenizer, "merge token \"\(a)\" is not in the vocabulary") }
            guard let bId = vocab[b] else { throw EbbError(.tokenizer, "merge token \"\(b)\" is not in the vocabulary") }
            var tail = Substring(b)
            if let prefix, !prefix.isEmpty, tail.hasPrefix(prefix) { tail = tail.dropFirst(prefix.count) }
            let merged = a + tail
            guard let newId = vocab[merged] else {
                throw EbbError(.tokenizer, "merged token \"\(merged)\" is not in the vocabulary")
            }
            merges[UInt64(aId) << 32 | UInt64(bId)] = UInt64(rank) << 32 | UInt64(newId)
        }

        var unkId: Int?
        if let unk = try JSONAccess.optionalString(dict["unk_token"], "model.unk_token") { unkId = vocab[unk] }
        return BPEModel(
            vocab: vocab, merges: merges, unkId: unkId,
            fuseUnk: try JSONAccess.bool(dict["fuse_unk"], default: false, "model.fuse_unk"),
            continuingSubwordPrefix: prefix, endOfWordSuffix: suffix,
            ignoreMerges: try JSONAccess.bool(dict["ignore_merges"], default: false, "model.ignore_merges"))
    }

    /// Ids of one pre-tokenized piece.
    func tokenize(_ word: String) -> [Int] {
        if ignoreMerges, let id = vocab[word] { return [id] }
        // Initial symbols: one per Unicode scalar.
        var ids: [Int] = []
        ids.reserveCapacity(word.utf8.count)
        let scalars = Array(word.unicodeScalars)
        var lastWasUnk = false
        for (i, s) in scalars.enumerated() {
            var piece = String(Character(s))
            if i > 0, let p = continuingSubwordPrefix { piece = p + piece }
            if i == scalars.count - 1, let suffix = endOfWordSuffix { piece += suffix }
            if let id = vocab[piece] {
                ids.append(id)
                lastWasUnk = false
            } else if let unkId {
                if !(fuseUnk && lastWasUnk) { ids.append(unkId) }
                lastWasUnk = true
            }
        }
        return merge(ids)
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
