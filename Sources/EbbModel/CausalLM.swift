import EbbCheckpoint
import EbbCore
import EbbTensor
import Foundation
import Synchronization

/// A decoder-only MoE language model on one backend: embedding, decoder layers, final
/// norm, LM head. Holds the dense weights and the experts of its placement.
public final class CausalLM: Sendable {
    public let config: ModelConfig
    public let backend: any Backend
    let embedTokens: Tensor
    let layers: [DecoderLayer]
    let norm: RMSNorm
    let lmHead: Tensor
    /// Bytes of weights held on the device.
    public let weightBytes: Int
    /// The expert-parallel group the MoE layers exchange tokens through; nil when this
    /// model holds every expert (one rank).
    public let expertParallel: ExpertParallelGroup?
    /// Counts `install` calls: captured graphs hold the old expert tensors' addresses.
    private let installs = Atomic<Int>(0)
    public var expertSlotsVersion: Int { installs.load(ordering: .relaxed) }

    /// Loads `DIR/config.json` and the safetensors of `DIR`.
    public static func load(directory: URL, backend: any Backend,
                            placement: (@Sendable (_ layer: Int) -> ExpertPlacement)? = nil,
                            expertParallel: ExpertParallelGroup? = nil) throws -> CausalLM {
        let config = try ModelConfig.load(directory: directory)
        let weights = try CheckpointWeights(directory: directory)
        return try CausalLM(config: config, weights: weights, backend: backend, placement: placement,
                            expertParallel: expertParallel)
    }

    /// Builds the model from `weights`. `placement` gives each MoE layer's expert
    /// placement (default: one rank holding every expert). Every tensor of the source
    /// must be used, or the architecture must know to ignore it.
    public init(config: ModelConfig, weights: any WeightSource, backend: any Backend,
                placement: (@Sendable (_ layer: Int) -> ExpertPlacement)? = nil,
                expertParallel: ExpertParallelGroup? = nil) throws {
        self.config = config
        self.backend = backend
        self.expertParallel = expertParallel
        let loader = WeightLoader(source: weights, backend: backend)
        let definition = config.architecture.definition
        embedTokens = try loader.tensor("model.embed_tokens.weight", shape: [config.vocabSize, config.hiddenSize])
        let rope = try RotaryEmbedding(parameters: config.rope, backend: backend)
        var layers = [DecoderLayer]()
        for i in 0..<config.numLayers {
            let p = config.moeLayers[i] ? placement?(i) : nil
            if let p, p.numLogicalExperts != config.moe.numExperts {
                throw EbbError(.invalidArgument, "placement for layer \(i) covers \(p.numLogicalExperts) experts, the model has \(config.moe.numExperts)")
            }
            layers.append(try definition.makeLayer(i, loader: loader, config: config, rope: rope, placement: p))
        }
        self.layers = layers
        norm = try RMSNorm(loader, "model.norm.weight", size: config.hiddenSize, eps: config.rmsNormEps)
        if config.tieWordEmbeddings {
            lmHead = embedTokens
        } else {
            lmHead = try loader.tensor("lm_head.weight", shape: [config.vocabSize, config.hiddenSize])
        }
        let cfg = config
        let otherRanks = layers.reduce(into: Set<String>()) { $0.formUnion($1.feedForward.moe?.otherRanksTensorNames ?? []) }
        try weights.checkAllUsed(ignoring: { name in
            definition.isIgnored(name, config: cfg) || (cfg.tieWordEmbeddings && name == "lm_head.weight")
                || otherRanks.contains(name)
        })
        weightBytes = loader.loadedBytes
    }

    public var cacheLayout: KVCache.Layout { config.architecture.definition.cacheLayout(config) }

    public func kvCacheBytesPerBlock(blockSize: Int) -> Int {
        KVCache.bytesPerBlock(layout: cacheLayout, numLayers: config.numLayers, blockSize: blockSize, dtype: backend.computeDType)
    }

    public func makeKVCache(numBlocks: Int, blockSize: Int) throws -> KVCache {
        try KVCache(layout: cacheLayout, numLayers: config.numLayers, numBlocks: numBlocks, blockSize: blockSize, backend: backend)
    }

    /// The MoE blocks, for expert-parallel execution and load statistics.
    var moeBlocks: [(layer: Int, block: MoEBlock)] {
        layers.enumerated().compactMap { i, l in l.feedForward.moe.map { (i, $0) } }
    }

    /// Describes `sequences` as a batch on this model's device.
    public func makeBatch(_ sequences: [SequenceInput], cache: KVCache) throws -> ForwardBatch {
        try ForwardBatch(sequences: sequences, blockSize: cache.blockSize, numBlocks: cache.numBlocks,
                         vocabSize: config.vocabSize, maxPositions: nil, backend: backend)
    }

    /// Runs one forward step: writes the new tokens' keys and values into `cache` and
    /// returns logits `[batch.numLogitRows, vocab]` on the device.
    public func forward(_ batch: ForwardBatch, cache: KVCache) throws -> Tensor {
        // The residual stream in the backend's residual dtype (f32 on a GPU); layers read
        // normalized copies of it in the compute dtype. Logits come back in f32.
        let hidden = try backend.empty([batch.numTokens, config.hiddenSize], dtype: backend.residualDType)
        backend.embedding(ids: batch.tokenIds, table: embedTokens, out: hidden)
        var pending: Tensor?
        for (i, layer) in layers.enumerated() {
            pending = try layer(hidden, pending: pending, layer: i, cache: cache, batch: batch, expertParallel: expertParallel, backend)
        }
        if let pending { backend.add(hidden, pending, out: hidden) }
        let selected: Tensor
        if batch.numLogitRows == batch.numTokens {
            selected = hidden
        } else {
            selected = try backend.empty([batch.numLogitRows, config.hiddenSize], dtype: backend.residualDType)
            backend.gatherRows(hidden, indices: batch.logitRows, out: selected)
        }
        let normed = try norm(selected, backend)
        let logits = try backend.empty([batch.numLogitRows, config.vocabSize], dtype: .f32)
        backend.linear(normed, lmHead, out: logits)
        return logits
    }

    /// A step with no tokens of this rank's own: enters every MoE layer's exchange, in
    /// layer order, and computes the rows other ranks send. Keeps the lockstep when this
    /// rank is idle but others are not. Does nothing without expert parallelism.
    public func dummyForward() throws {
        guard let expertParallel else { return }
        for (layer, block) in moeBlocks {
            _ = try block.expertParallel(nil, layer: layer, group: expertParallel, backend)
        }
    }

    // MARK: Expert slots (for rearrangement)

    /// Indices of the MoE layers.
    public var moeLayerIndices: [Int] { moeBlocks.map(\.layer) }

    /// The expert slots a MoE layer computes with now.
    public func expertSlots(layer: Int) -> ExpertSlots? {
        layers.indices.contains(layer) ? layers[layer].feedForward.moe?.experts.current : nil
    }

    /// Per-slot shapes of the expert weights: gate+up `[2I, H]`, down `[H, I]`.
    public var expertSlotShapes: (gateUp: [Int], down: [Int]) {
        ([2 * config.moe.intermediateSize, config.hiddenSize], [config.hiddenSize, config.moe.intermediateSize])
    }

    /// Loads expert `expert` of MoE layer `layer` from `source` (the checkpoint) into one
    /// slot's `gateUp` `[2I, H]` and `down` `[H, I]`: an expert whose every copy was on a
    /// lost rank comes back this way.
    public func loadExpert(layer: Int, expert: Int, from source: any WeightSource, gateUp: Tensor, down: Tensor) throws {
        guard layers.indices.contains(layer), let block = layers[layer].feedForward.moe else {
            throw EbbError(.invalidArgument, "layer \(layer) is not a MoE layer")
        }
        try block.loadExpert(expert, from: source, gateUp: gateUp, down: down, backend)
    }

    /// Switches MoE layers to new expert slots (call between steps, on the engine thread).
    public func install(_ slots: [Int: ExpertSlots]) throws {
        for (layer, s) in slots {
            guard layers.indices.contains(layer), let block = layers[layer].feedForward.moe else {
                throw EbbError(.invalidArgument, "layer \(layer) is not a MoE layer")
            }
            guard s.placement.numLogicalExperts == config.moe.numExperts else {
                throw EbbError(.invalidArgument, "expert slots for \(s.placement.numLogicalExperts) experts, the model has \(config.moe.numExperts)")
            }
            block.experts.current = s
        }
        installs.add(1, ordering: .relaxed)
    }
}
