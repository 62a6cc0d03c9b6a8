import EbbComm
import EbbCore
import EbbEPLB
import EbbModel
import EbbTensor

/// Checksums of every logical expert's weights, `[moeLayer][expert]`, as loaded from the
/// checkpoint at the deployment's start (gathered from every rank over the data plane).
/// After a resize each rank checks the experts it now holds against them.
struct ExpertChecksums: Sendable, Equatable {
    var table: [[Int64]]

    /// Each local slot's checksum: its gate/up weights' `RowChecksum` mixed with its down
    /// weights', computed on the device that holds them (a GPU returns 16 bytes a slot).
    static func slotChecksums(_ slots: ExpertSlots, backend: any Backend) -> [Int64] {
        let n = slots.gateUp.shape.first ?? 0
        guard n > 0 else { return [] }
        func rows(_ t: Tensor) -> [UInt64] { backend.rowChecksums(t.reshaped([n, t.count / n])) }
        return zip(rows(slots.gateUp), rows(slots.down)).map { Int64(bitPattern: RowChecksum.mix($0) ^ $1) }
    }

    /// This rank's (expert, checksum) per local slot of each MoE layer (−1 experts for empty slots).
    static func local(_ model: CausalLM) -> [[(Int, Int64)]] {
        model.moeLayerIndices.map { layer in
            guard let slots = model.expertSlots(layer: layer) else { return [] }
            let sums = slotChecksums(slots, backend: model.backend)
            return slots.placement.localExperts.enumerated().map { i, e in
                (e, e >= 0 && i < sums.count ? sums[i] : 0)
            }
        }
    }

    /// Gathers every rank's checksums (all ranks hold the same number of slots).
    static func gather(_ model: CausalLM, communicator: any Communicator) throws -> ExpertChecksums {
        let mine = local(model)
        let flat = mine.flatMap { $0.flatMap { [Int64($0.0), $0.1] } }
        let all = try communicator.allGather(flat)
        let layers = mine.count, experts = model.config.moe.numExperts
        let perRank = flat.count
        var table = Array(repeating: Array(repeating: Int64(0), count: experts), count: layers)
        for r in 0..<communicator.size {
            let base = r * perRank
            var k = base
            for l in 0..<layers {
                for _ in 0..<(mine[l].count) {
                    let e = Int(all[k]), c = all[k + 1]
                    if e >= 0 && e < experts { table[l][e] = c }
                    k += 2
                }
            }
        }
        return ExpertChecksums(table: table)
    }

    /// Sends the table from rank 0 of `communicator` to the others (joiners).
    static func share(_ table: ExpertChecksums?, over communicator: any Communicator, layers: Int, experts: Int) throws -> ExpertChecksums {
        let flat = try communicator.broadcastArray(table?.table.flatMap { $0 } ?? [], root: 0)
        guard flat.count == layers * experts else {
            throw EbbError(.io, "expert checksums: got \(flat.count) values, expected \(layers * experts)")
        }
        return ExpertChecksums(table: (0..<layers).map { Array(flat[($0 * experts)..<(($0 + 1) * experts)]) })
    }

    /// Checks this rank's current slots; returns (slots checked, mismatches).
    func verify(_ model: CausalLM) -> (checked: Int, mismatches: Int) {
        var checked = 0, bad = 0
        for (l, slots) in Self.local(model).enumerated() where l < table.count {
            for (e, c) in slots where e >= 0 && e < table[l].count {
                checked += 1
                if table[l][e] != c { bad += 1 }
            }
        }
        return (checked, bad)
    }

    /// Logical experts without a slot in `placement`.
    static func unroutable(_ placement: EPLBPlacement) -> Int {
        placement.replicaCount.reduce(0) { $0 + $1.filter { $0 < 1 }.count }
    }
}
