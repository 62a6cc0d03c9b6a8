import Foundation

/// Rotary position embedding parameters, as Hugging Face's `rope_parameters` /
/// `rope_scaling` describe them. Computes the inverse frequencies and the attention
/// factor exactly as transformers' `ROPE_INIT_FUNCTIONS` do (in f32).
public struct RopeParameters: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case standard
        case linear(factor: Double)
        case yarn(Yarn)
    }

    public struct Yarn: Sendable, Equatable {
        public var factor: Double
        public var originalMaxPositionEmbeddings: Int
        public var betaFast: Double
        public var betaSlow: Double
        public var mscale: Double?
        public var mscaleAllDim: Double?
        public var attentionFactor: Double?
        public var truncate: Bool

        public init(factor: Double, originalMaxPositionEmbeddings: Int, betaFast: Double = 32, betaSlow: Double = 1,
                    mscale: Double? = nil, mscaleAllDim: Double? = nil, attentionFactor: Double? = nil, truncate: Bool = true) {
            self.factor = factor
            self.originalMaxPositionEmbeddings = originalMaxPositionEmbeddings
            self.betaFast = betaFast
            self.betaSlow = betaSlow
            self.mscale = mscale
            self.mscaleAllDim = mscaleAllDim
            self.attentionFactor = attentionFactor
            self.truncate = truncate
        }
    }

    public var theta: Double
    /// Number of rotated dimensions per head (head_dim × partial_rotary_factor).
    public var dimension: Int
    public var kind: Kind
    /// DeepSeek's layout: pairs (x[2i], x[2i+1]) instead of (x[i], x[i + d/2]).
    public var interleaved: Bool

    public init(theta: Double, dimension: Int, kind: Kind = .standard, interleaved: Bool = false) {
        self.theta = theta
        self.dimension = dimension
        self.kind = kind
        self.interleaved = interleaved
    }

    /// YaRN's magnitude correction, `0.1 · m · ln(scale) + 1` above scale 1.
    public static func yarnMscale(_ scale: Double, _ m: Double = 1) -> Double {
        scale <= 1 ? 1 : 0.1 * m * Foundation.log(scale) + 1
    }

    /// Inverse frequencies (`dimension / 2` values) and the factor cos/sin are scaled by.
    public func inverseFrequencies() -> (values: [Float], attentionFactor: Float) {
        let d = dimension
        let half = d / 2
        // base ** (arange(0, d, 2) / d), computed in f32 as torch does.
        let exponents = (0..<half).map { Float(2 * $0) / Float(d) }
        let base = Float(theta)
        let posFreqs = exponents.map { powf(base, $0) }
        switch kind {
        case .standard:
            return (posFreqs.map { 1 / $0 }, 1)
        case .linear(let factor):
            return (posFreqs.map { 1 / $0 / Float(factor) }, 1)
        case .yarn(let y):
            let factor = y.factor
            let attention: Double
            if let a = y.attentionFactor {
                attention = a
            } else if let m = y.mscale, let mAll = y.mscaleAllDim, m != 0, mAll != 0 {
                attention = Self.yarnMscale(factor, m) / Self.yarnMscale(factor, mAll)
            } else {
                attention = Self.yarnMscale(factor)
            }
            func correctionDim(_ rotations: Double) -> Double {
                (Double(d) * Foundation.log(Double(y.originalMaxPositionEmbeddings) / (rotations * 2 * Double.pi)))
                    / (2 * Foundation.log(theta))
            }
            var low = correctionDim(y.betaFast)
            var high = correctionDim(y.betaSlow)
            if y.truncate {
                low = low.rounded(.down)
                high = high.rounded(.up)
            }
            low = max(low, 0)
            high = min(high, Double(d - 1))
            let lowF = Float(low)
            var highF = Float(high)
            if lowF == highF { highF += 0.001 }
            var result = [Float](repeating: 0, count: half)
            for i in 0..<half {
                let ramp = min(max((Float(i) - lowF) / (highF - lowF), 0), 1)
                let extrapolationFactor = 1 - ramp
                let extrapolation = 1 / posFreqs[i]
                let interpolation = 1 / (Float(factor) * posFreqs[i])
                result[i] = interpolation * (1 - extrapolationFactor) + extrapolation * extrapolationFactor
            }
            return (result, Float(attention))
        }
    }
}

/// Rotary embedding ready for a backend: the inverse frequencies on the device.
public struct RotaryEmbedding: Sendable {
    public let parameters: RopeParameters
    public let inverseFrequencies: Tensor
    public let attentionFactor: Float

    public init(parameters: RopeParameters, backend: any Backend) throws {
        self.parameters = parameters
        let (values, factor) = parameters.inverseFrequencies()
        self.inverseFrequencies = try values.withUnsafeBytes {
            try backend.upload($0, sourceDType: .f32, shape: [values.count], dtype: .f32)
        }
        self.attentionFactor = factor
    }

    public var dimension: Int { parameters.dimension }
    public var interleaved: Bool { parameters.interleaved }
}
