import EbbCore

/// Per-rank load of one layer: each expert's load split evenly over its replicas, summed
/// over the slots of each rank. `load` has `E` entries.
public func rankLoads(load: [Double], physicalToLogical: [Int], numRanks: Int, replicaCount: [Int]) -> [Double] {
    let slotsPerRank = numRanks > 0 ? physicalToLogical.count / numRanks : 0
    var loads = Array(repeating: 0.0, count: max(0, numRanks))
    guard slotsPerRank > 0 else { return loads }
    for (slot, e) in physicalToLogical.enumerated() where e >= 0 && e < load.count && e < replicaCount.count {
        let r = slot / slotsPerRank
        if r < loads.count, replicaCount[e] > 0 { loads[r] += load[e] / Double(replicaCount[e]) }
    }
    return loads
}

/// Balancedness of one layer's rank loads: mean / max (1 is perfect; 1 too when all are
/// zero).
public func balancedness(rankLoads: [Double]) -> Double {
    guard let mx = rankLoads.max(), mx > 0 else { return 1 }
    return rankLoads.reduce(0, +) / Double(rankLoads.count) / mx
}

/// Balancedness of a placement under a load, `[layers][E]`: per layer, mean rank load
/// over max rank load (load of an expert split evenly over its replicas), averaged over
/// layers. 1 is perfectly even; lower means the hottest rank stalls the others.
///
/// - Throws: `EbbError(.invalidArgument)` when `load` does not match the placement's
///   shape or holds a negative or non-finite value.
public func balancedness(load: [[Double]], placement: EPLBPlacement) throws -> Double {
    let per = try layerBalancedness(load: load, placement: placement)
    return per.isEmpty ? 1 : per.reduce(0, +) / Double(per.count)
}

/// Balancedness of each layer (see `balancedness(load:placement:)`).
public func layerBalancedness(load: [[Double]], placement: EPLBPlacement) throws -> [Double] {
    guard load.count == placement.numLayers else {
        throw EbbError(.invalidArgument, "balancedness: load has \(load.count) layers, placement has \(placement.numLayers)")
    }
    var out: [Double] = []
    for (layer, row) in load.enumerated() {
        guard row.count == placement.numLogicalExperts else {
            throw EbbError(.invalidArgument, "balancedness: layer \(layer) has \(row.count) experts, placement has \(placement.numLogicalExperts)")
        }
        guard row.allSatisfy({ $0.isFinite && $0 >= 0 }) else {
            throw EbbError(.invalidArgument, "balancedness: layer \(layer) has a negative or non-finite load")
        }
        out.append(balancedness(rankLoads: rankLoads(
            load: row, physicalToLogical: placement.physicalToLogical[layer],
            numRanks: placement.numRanks, replicaCount: placement.replicaCount[layer])))
    }
    return out
}

/// Whether moving from a placement of balancedness `current` to one of `proposed` is
/// worth the weight transfers: the gain must be strictly larger than `minGain`
/// (e.g. 0.02). A non-finite input is never worth acting on.
public func shouldRebalance(current: Double, proposed: Double, minGain: Double) -> Bool {
    guard current.isFinite, proposed.isFinite, minGain.isFinite else { return false }
    return proposed - current > minGain
}

/// `shouldRebalance` on placements: compares their balancedness under `load`.
public func shouldRebalance(load: [[Double]], current: EPLBPlacement, proposed: EPLBPlacement, minGain: Double) throws -> Bool {
    shouldRebalance(current: try balancedness(load: load, placement: current),
                    proposed: try balancedness(load: load, placement: proposed), minGain: minGain)
}

extension EPLBPlacement {
    /// `load` (`[layers][logical experts]`) spread over the physical slots: each slot gets
    /// its expert's load divided by the expert's replica count.
    public func slotLoad(_ load: [[Double]]) -> [[Double]] {
        zip(physicalToLogical, zip(replicaCount, load)).map { slots, counts in
            let (replicas, tokens) = counts
            return slots.map { e in e < tokens.count ? tokens[e] / Double(max(1, replicas[e])) : 0 }
        }
    }
}
