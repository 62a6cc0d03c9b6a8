import EbbCore
import EbbTensor

/// The paged KV cache of one engine: per layer, `numBlocks` blocks of `blockSize` token
/// slots. Standard attention keeps keys and values per KV head; DeepSeek's latent
/// attention keeps the normalized latent and the rotated rope key per token.
public final class KVCache: @unchecked Sendable {
    public enum Layout: Sendable, Equatable {
        /// `[blocks, blockSize, kvHeads, headDim]` keys and `[..., valueDim]` values.
        case perHead(kvHeads: Int, headDim: Int, valueDim: Int)
        /// `[blocks, blockSize, latentDim + ropeDim]`.
        case latent(latentDim: Int, ropeDim: Int)

        /// Elements stored per token per layer.
        public var elementsPerToken: Int {
            switch self {
            case let .perHead(h, d, v): return h * (d + v)
            case let .latent(l, r): return l + r
            }
        }
    }

    public let layout: Layout
    public let numBlocks: Int
    public let blockSize: Int
    public let numLayers: Int
    /// Per layer: keys (or the latent cache) and values (nil for the latent layout).
    public let keys: [Tensor]
    public let values: [Tensor?]

    public init(layout: Layout, numLayers: Int, numBlocks: Int, blockSize: Int, backend: any Backend) throws {
        guard numBlocks > 0, blockSize > 0 else {
            throw EbbError(.invalidArgument, "KV cache needs at least one block of at least one token (got \(numBlocks) × \(blockSize))")
        }
        self.layout = layout
        self.numBlocks = numBlocks
        self.blockSize = blockSize
        self.numLayers = numLayers
        // One allocation for the whole cache (no fragmentation, one driver call on a GPU),
        // carved into per-layer views.
        let perLayer = numBlocks * blockSize * layout.elementsPerToken
        let storage = try backend.empty([numLayers * perLayer], dtype: backend.computeDType)
        func view(_ offset: Int, _ shape: [Int]) -> Tensor {
            Tensor(buffer: storage.buffer, dtype: storage.dtype, shape: shape, offset: storage.offset + offset)
        }
        var keys = [Tensor](), values = [Tensor?]()
        for layer in 0..<numLayers {
            let base = layer * perLayer
            switch layout {
            case let .perHead(h, d, v):
                keys.append(view(base, [numBlocks, blockSize, h, d]))
                values.append(view(base + numBlocks * blockSize * h * d, [numBlocks, blockSize, h, v]))
            case let .latent(l, r):
                keys.append(view(base, [numBlocks, blockSize, l + r]))
                values.append(nil)
            }
        }
        self.keys = keys
        self.values = values
    }

    /// Bytes one block takes over all layers for a layout.
    public static func bytesPerBlock(layout: Layout, numLayers: Int, blockSize: Int, dtype: DType) -> Int {
        layout.elementsPerToken * blockSize * numLayers * dtype.byteSize
    }
}
