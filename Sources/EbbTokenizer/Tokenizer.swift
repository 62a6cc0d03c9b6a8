import EbbCore
import Foundation
import Synchronization

/// A BPE tokenizer read from a Hugging Face `tokenizer.json`: byte-level (Qwen, DeepSeek,
/// Llama 3) or SentencePiece style with byte fallback (Mixtral, Mistral, Llama 2).
///
/// Encoding follows `tokenizers`: added tokens are found in the raw text first, then each
/// stretch between them is normalized, pre-tokenized and run through the BPE model; the
/// post-processor (a `TemplateProcessing` adding `<s>`, say) then adds its special tokens
/// unless `addSpecialTokens` is false.
public final class Tokenizer: Sendable {
    /// Ids at or above this are refused when loading (keeps tables bounded).
    static let maxVocabSize = 1 << 24

    let normalizer: Normalizer?
    let preTokenizer: PreTokenizer?
    let model: BPEModel
    let decoder: TokenDecoder
    let postProcessor: PostProcessor
    /// Added tokens matched in raw text, and those matched after normalization.
    let rawAddedTokens: AddedTokenMatcher
    let normalizedAddedTokens: AddedTokenMatcher
    let addedTokenIds: [ExactString: Int]
    /// Per id: the token string (nil for holes in the id space).
    let idToToken: [String?]
    /// Per id: the bytes the token decodes to.
    let idToBytes: [[UInt8]]
    let isSpecial: [Bool]
    private let cache = Mutex<[CacheKey: [Int]]>([:])

    /// Number of ids: one past the largest id of the vocabulary and the added tokens.
    public let vocabSize: Int
    public let eosTokenId: Int?
    public let bosTokenId: Int?
    /// Ids of added tokens marked `special`.
    public let specialTokenIds: Set<Int>

    init(normalizer: Normalizer?, preTokenizer: PreTokenizer?, model: BPEModel, decoder: TokenDecoder,
         postProcessor: PostProcessor = .none, addedTokens: [AddedToken], eosToken: String?, bosToken: String?) {
        self.normalizer = normalizer
        self.preTokenizer = preTokenizer
        self.model = model
        self.decoder = decoder
        self.postProcessor = postProcessor.isIdentity ? .none : postProcessor

        var size = 0
        for id in model.vocab.values { size = max(size, id + 1) }
        for t in addedTokens { size = max(size, t.id + 1) }
        vocabSize = size

        var tokens = [String?](repeating: nil, count: size)
        for (key, id) in model.vocab {
            let token = key.string
            // Duplicate ids: keep a deterministic choice (the smallest string).
            if let existing = tokens[id], existing < token { continue }
            tokens[id] = token
        }
        var added: [ExactString: Int] = [:]
        var special = [Bool](repeating: false, count: size)
        var specialIds = Set<Int>()
        var raw: [(String, AddedToken)] = []
        var normalized: [(String, AddedToken)] = []
        for t in addedTokens {
            added[ExactString(t.content)] = t.id
            if t.special {
                special[t.id] = true
                specialIds.insert(t.id)
            }
            if t.normalized {
                // Hugging Face stores (and decodes) a normalized token as its normalized form.
                let form = normalizer?.apply(t.content) ?? t.content
                normalized.append((form, t))
                tokens[t.id] = form
            } else {
                raw.append((t.content, t))
                tokens[t.id] = t.content
            }
        }
        idToToken = tokens
        idToBytes = tokens.map { $0.map(decoder.bytes(of:)) ?? [] }
        isSpecial = special
        specialTokenIds = specialIds
        addedTokenIds = added
        rawAddedTokens = AddedTokenMatcher(raw)
        normalizedAddedTokens = AddedTokenMatcher(normalized)

        func lookup(_ s: String?) -> Int? {
            guard let s else { return nil }
            return added[ExactString(s)] ?? model.vocab[ExactString(s)]
        }
        eosTokenId = lookup(eosToken)
        bosTokenId = lookup(bosToken)
    }

    /// Parses a `tokenizer.json`; `config` is an optional `tokenizer_config.json` that names
    /// the `eos_token` and `bos_token`.
    public convenience init(json: Data, config: Data?) throws {
        let root = try JSONAccess.object(try TokJSON.parse(json, what: "tokenizer.json"), "tokenizer.json")
        let normalizer = try Normalizer.parse(root["normalizer"])
        let preTokenizer = try PreTokenizer.parse(root["pre_tokenizer"])
        guard let modelJSON = root["model"] else { throw EbbError(.tokenizer, "tokenizer.json has no \"model\"") }
        let model = try BPEModel.parse(modelJSON)
        let decoder = try TokenDecoder.parse(root["decoder"])
        let postProcessor = try PostProcessor.parse(root["post_processor"])
        var added: [AddedToken] = []
        if let list = root["added_tokens"], !list.isNull {
            for (i, item) in try JSONAccess.array(list, "added_tokens").enumerated() {
                added.append(try AddedToken.parse(item, index: i))
            }
        }
        var eos: String?, bos: String?
        if let config {
            let dict = try JSONAccess.object(try TokJSON.parse(config, what: "tokenizer_config.json"), "tokenizer_config.json")
            eos = try Self.tokenString(dict["eos_token"], "tokenizer_config.json eos_token")
            bos = try Self.tokenString(dict["bos_token"], "tokenizer_config.json bos_token")
        }
        self.init(normalizer: normalizer, preTokenizer: preTokenizer, model: model, decoder: decoder,
                  postProcessor: postProcessor, addedTokens: added, eosToken: eos, bosToken: bos)
    }

    /// Parses a `tokenizer.json` (no eos/bos: those live in `tokenizer_config.json`).
    public convenience init(json: Data) throws {
        try self.init(json: json, config: nil)
    }

    /// Reads `directory/tokenizer.json` and, when present, `directory/tokenizer_config.json`.
    public static func load(directory: URL) throws -> Tokenizer {
        let file = directory.appendingPathComponent("tokenizer.json")
        let json: Data
        do {
            json = try Data(contentsOf: file)
        } catch {
            throw EbbError(.tokenizer, "cannot read \(file.path): \(error.localizedDescription)")
        }
        let configFile = directory.appendingPathComponent("tokenizer_config.json")
        var config: Data?
        if FileManager.default.fileExists(atPath: configFile.path) {
            do {
                config = try Data(contentsOf: configFile)
            } catch {
                throw EbbError(.tokenizer, "cannot read \(configFile.path): \(error.localizedDescription)")
            }
        }
        return try Tokenizer(json: json, config: config)
    }

    /// `eos_token` / `bos_token`: a string, an object with "content", or null.
    static func tokenString(_ value: TokJSON?, _ context: String) throws -> String? {
        switch value {
        case nil, .null?: return nil
        case .string(let s)?: return s
        case .object(let dict)?: return try JSONAccess.string(dict["content"], "\(context).content")
        default: throw EbbError(.tokenizer, "\(context): expected a string or an object with \"content\"")
        }
    }

    /// The tokenizer of the embedded model `builtin:tiny-moe`: ids 0, 1, 2 are the special
    /// tokens `<|endoftext|>`, `<|im_start|>`, `<|im_end|>` (eos = 2); ids 3...258 are the
    /// 256 bytes as GPT-2 alphabet characters, in the alphabet's character order (`!` is 3,
    /// `Ġ` — the space — is 223), the layout of Qwen2-style vocabularies; no merges, so text
    /// encodes to one id per UTF-8 byte.
    public static func byteLevel() -> Tokenizer {
        let specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        var vocab: [ExactString: Int] = [:]
        for (i, s) in specials.enumerated() { vocab[ExactString(s)] = i }
        for (i, b) in ByteLevelAlphabet.orderedBytes.enumerated() {
            vocab[ExactString(ByteLevelAlphabet.scalarString(b))] = 3 + i
        }
        let model = BPEModel(vocab: vocab, merges: [:], unkId: nil, fuseUnk: false, continuingSubwordPrefix: nil,
                             endOfWordSuffix: nil, ignoreMerges: false)
        let added = specials.enumerated().map {
            AddedToken(id: $0.offset, content: $0.element, singleWord: false, lstrip: false, rstrip: false,
                       normalized: false, special: true)
        }
        return Tokenizer(normalizer: nil, preTokenizer: .byteLevel(addPrefixSpace: false, useRegex: false), model: model,
                         decoder: .byteLevel, addedTokens: added, eosToken: "<|im_end|>", bosToken: nil)
    }

    // MARK: Encoding

    /// Token ids of `text` with the post-processor's special tokens (as `tokenizers`'
    /// `encode(text)` gives them by default; byte-level tokenizers usually have none).
    public func encode(_ text: String) -> [Int] {
        encode(text, addSpecialTokens: true)
    }

    /// Token ids of `text`; `addSpecialTokens: false` leaves out what the post-processor
    /// would add (e.g. for a chat prompt whose template already holds `<s>`).
    public func encode(_ text: String, addSpecialTokens: Bool) -> [Int] {
        var ids: [Int] = []
        ids.reserveCapacity(text.utf8.count / 3 + 4)
        for (index, segment) in rawAddedTokens.split(text).enumerated() {
            switch segment {
            case .token(let id):
                ids.append(id)
            case .text(let raw):
                // Only the first segment starts at offset 0 of the input.
                var atOrigin = index == 0
                let normalizedText = normalizer?.apply(raw, keepsOrigin: &atOrigin) ?? raw
                for (innerIndex, inner) in normalizedAddedTokens.split(normalizedText).enumerated() {
                    switch inner {
                    case .token(let id): ids.append(id)
                    case .text(let t): encodeText(t, atOrigin: atOrigin && innerIndex == 0, into: &ids)
                    }
                }
            }
        }
        if case .none = postProcessor { return ids }
        return postProcessor.process(ids, addSpecialTokens: addSpecialTokens)
    }

    private func encodeText(_ text: String, atOrigin: Bool, into ids: inout [Int]) {
        var list = PieceList(text, atOrigin: atOrigin)
        preTokenizer?.apply(&list)
        for piece in list.pieces { encodePiece(piece, in: list, into: &ids) }
    }

    private static let cacheLimit = 100_000
    private static let cacheablePieceLength = 128

    private func encodePiece(_ piece: Piece, in list: PieceList, into ids: inout [Int]) {
        let raw = list.rawBytes(piece)
        if raw.isEmpty { return }
        if piece.mapped, raw.count == 1, let b = raw.first, model.byteIds[Int(b)] >= 0 {
            ids.append(model.byteIds[Int(b)])
            return
        }
        let key = CacheKey(text: ExactString(String(decoding: raw, as: UTF8.self)), mapped: piece.mapped)
        let cacheable = raw.count <= Self.cacheablePieceLength
        if cacheable, let hit = cache.withLock({ $0[key] }) {
            ids.append(contentsOf: hit)
            return
        }
        let result = piece.mapped ? model.tokenize(mappedBytes: raw) : model.tokenize(key.text.string)
        ids.append(contentsOf: result)
        if cacheable {
            cache.withLock { cache in
                if cache.count >= Self.cacheLimit { cache.removeAll(keepingCapacity: true) }
                cache[key] = result
            }
        }
    }

    // MARK: Decoding

    public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) -> String {
        if decoder.kind == .chain {
            var tokens: [String] = []
            tokens.reserveCapacity(ids.count)
            for id in ids {
                guard id >= 0, id < vocabSize, let token = idToToken[id] else { continue }
                if skipSpecialTokens && isSpecial[id] { continue }
                tokens.append(token)
            }
            return decoder.decode(tokens)
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(ids.count * 4)
        var first = true
        for id in ids {
            guard id >= 0, id < vocabSize, idToToken[id] != nil else { continue }
            if skipSpecialTokens && isSpecial[id] { continue }
            if decoder.kind == .joinWithSpace && !first { bytes.append(0x20) }
            first = false
            bytes.append(contentsOf: idToBytes[id])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Id of a vocabulary or added token string (e.g. `"Ġthe"`, `"<|im_end|>"`).
    public func tokenId(for token: String) -> Int? {
        addedTokenIds[ExactString(token)] ?? model.vocab[ExactString(token)]
    }

    /// The raw vocabulary string of an id.
    public func token(for id: Int) -> String? {
        guard id >= 0, id < vocabSize else { return nil }
        return idToToken[id]
    }

    /// The bytes a token decodes to (for logprob output); nil for unknown ids.
    public func tokenBytes(for id: Int) -> [UInt8]? {
        guard id >= 0, id < vocabSize, idToToken[id] != nil else { return nil }
        return idToBytes[id]
    }

    /// Whether `id` is an added token marked special.
    public func isSpecialToken(_ id: Int) -> Bool {
        id >= 0 && id < vocabSize && isSpecial[id]
    }
}

/// A piece's raw text and whether the model reads it through the byte alphabet.
struct CacheKey: Hashable, Sendable {
    let text: ExactString
    let mapped: Bool
}
