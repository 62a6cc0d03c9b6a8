import ArgumentParser
import EbbCore
import EbbEngine

/// Expert load balancing options of `serve`, handed on to each engine core.
struct EPLBOptions: ParsableArguments {
    @Flag(help: "Rebalance experts over the ranks from their measured load (needs --enable-expert-parallel)")
    var enableEplb = false

    @Option(help: "Redundant expert slots over all ranks, at least (hot experts get replicas); the slots round up so every rank holds as many")
    var numRedundantExperts: Int = 0

    @Option(help: "Steps of expert load statistics kept")
    var eplbWindowSize: Int = 1000

    @Option(help: "Steps between rebalance decisions")
    var eplbStepInterval: Int = 3000

    @Option(help: "Rebalance only when balancedness (mean/max tokens per rank) rises by more than this; negative forces every decision to rebalance")
    var eplbMinGain: Double = 0.01

    /// The EPLB configuration, or nil when off. `implied`: EPLB is on without the flag
    /// (`--enable-elastic-ep` turns it on).
    func config(implied: Bool = false) throws -> EPLBConfig? {
        guard enableEplb || implied else {
            guard numRedundantExperts == 0 else {
                throw EbbError(.invalidArgument, "--num-redundant-experts needs --enable-eplb (or --enable-elastic-ep, which turns EPLB on)")
            }
            return nil
        }
        guard numRedundantExperts >= 0, eplbWindowSize >= 1, eplbStepInterval >= 1, eplbMinGain.isFinite else {
            throw EbbError(.invalidArgument, "--num-redundant-experts must be ≥ 0, --eplb-window-size and --eplb-step-interval ≥ 1")
        }
        return EPLBConfig(numRedundantExperts: numRedundantExperts, windowSize: eplbWindowSize,
                          stepInterval: eplbStepInterval, minGain: eplbMinGain)
    }

    /// The same options for the engine cores; `implied` as in `config`.
    func arguments(implied: Bool = false) -> [String] {
        guard enableEplb || implied else { return [] }
        return ["--enable-eplb", "--num-redundant-experts", "\(numRedundantExperts)", "--eplb-window-size", "\(eplbWindowSize)",
                "--eplb-step-interval", "\(eplbStepInterval)", "--eplb-min-gain=\(eplbMinGain)"]
    }
}
