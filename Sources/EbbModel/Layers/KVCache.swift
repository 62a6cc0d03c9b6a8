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
        var keys = [Tensor](), values = [Tensor?]()
        for _ in 0..<numLayers {
            switch layout {
            case let .perHead(h, d, v):
                keys.append(try backend.empty([numBlocks, blockSize, h, d], dtype: backend.computeDType))
                values.append(try backend.empty([numBlocks, blockSize, h, v], dtype: backend.computeDType))
            case let .latent(l, r):
                keys.append(try backend.empty([numBlocks, blockSize, l + r], dtype: backend.computeDType))
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
