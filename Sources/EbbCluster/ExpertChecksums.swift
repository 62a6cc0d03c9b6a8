import EbbComm
import EbbCore
import EbbEPLB
import EbbModel

/// Checksums of every logical expert's weights, `[moeLayer][expert]`, as loaded from the
/// checkpoint at the deployment's start (gathered from every rank over the data plane).
/// After a resize each rank checks the experts it now holds against them.
struct ExpertChecksums: Sendable, Equatable {
    var table: [[Int64]]

    /// FNV-1a over the bit patterns of one slot's gate/up and down weights.
    static func checksum(_ slots: ExpertSlots, slot i: Int, model: CausalLM) -> Int64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for t in [slots.gateUp, slots.down] {
            for v in model.backend.downloadFloats(t.slice(first: i..<(i + 1))) {
                h = (h ^ UInt64(v.bitPattern)) &* 0x100_0000_01B3
            }
        }
        return Int64(bitPattern: h)
    }

    /// This rank's (expert, checksum) per local slot of each MoE layer (−1 experts for empty slots).
    static func local(_ model: CausalLM) -> [[(Int, Int64)]] {
        model.moeLayerIndices.map { layer in
            guard let slots = model.expertSlots(layer: layer) else { return [] }
            return slots.placement.localExperts.enumerated().map { i, e in
                (e, e >= 0 ? checksum(slots, slot: i, model: model) : 0)
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
