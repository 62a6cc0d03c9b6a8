import ArgumentParser
import EbbCore
import EbbEngine

/// Expert load balancing options of `serve`, handed on to each engine core.
struct EPLBOptions: ParsableArguments {
    @Flag(help: "Rebalance experts over the ranks from their measured load (needs --enable-expert-parallel)")
    var enableEplb = false

    @Option(help: "Redundant expert slots over all ranks (hot experts get replicas); experts + these must divide by the ranks")
    var numRedundantExperts: Int = 0

    @Option(help: "Steps of expert load statistics kept")
    var eplbWindowSize: Int = 1000

    @Option(help: "Steps between rebalance decisions")
    var eplbStepInterval: Int = 3000

    @Option(help: "Rebalance only when balancedness (mean/max tokens per rank) rises by more than this; negative forces every decision to rebalance")
    var eplbMinGain: Double = 0.01

    /// The EPLB configuration, or nil when off.
    func config() throws -> EPLBConfig? {
        guard enableEplb else {
            guard numRedundantExperts == 0 else {
                throw EbbError(.invalidArgument, "--num-redundant-experts needs --enable-eplb")
            }
            return nil
        }
        guard numRedundantExperts >= 0, eplbWindowSize >= 1, eplbStepInterval >= 1, eplbMinGain.isFinite else {
            throw EbbError(.invalidArgument, "--num-redundant-experts must be ≥ 0, --eplb-window-size and --eplb-step-interval ≥ 1")
        }
        return EPLBConfig(numRedundantExperts: numRedundantExperts, windowSize: eplbWindowSize,
                          stepInterval: eplbStepInterval, minGain: eplbMinGain)
    }

    /// EPLB with the defaults (what --enable-elastic-ep turns on when --enable-eplb is absent).
    static let defaultArguments = ["--enable-eplb"]

    var arguments: [String] {
        guard enableEplb else { return [] }
        return ["--enable-eplb", "--num-redundant-experts", "\(numRedundantExperts)", "--eplb-window-size", "\(eplbWindowSize)",
                "--eplb-step-interval", "\(eplbStepInterval)", "--eplb-min-gain=\(eplbMinGain)"]
    }
}
