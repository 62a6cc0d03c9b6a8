import EbbCore

/// How one slot of the new placement gets its expert's weights.
///
/// Every source refers to the OLD placement's contents: an executor must read each
/// source before that slot is overwritten (e.g. stage incoming and locally copied weights
/// in a scratch buffer, then commit), exactly as `TransferPlan.apply` simulates.
public enum SlotSource: Sendable, Equatable {
    /// The slot already holds this expert; nothing moves.
    case keep
    /// This rank holds the expert in another slot (`fromSlot`, global index) of the old
    /// placement; copy it locally.
    case localCopy(fromSlot: Int)
    /// Receive from `fromRank`, which holds the expert in its old slot `fromSlot`.
    case receive(fromRank: Int, fromSlot: Int)
    /// No rank holds the expert in the old placement; load it from the checkpoint.
    case loadFromCheckpoint
    /// The new slot is empty (−1); nothing to do.
    case empty
}

/// One slot of the new placement and how it is filled.
public struct SlotTransfer: Sendable, Equatable {
    /// Global slot index in the new placement (its rank is `slot / slotsPerRank`).
    public let slot: Int
    /// The expert the slot holds in the new placement (−1 for empty).
    public let expert: Int
    public let source: SlotSource
}

/// A weight send: rank `fromRank` sends the expert in its old slot `fromSlot` to slot
/// `toSlot` of rank `toRank`.
public struct ExpertSend: Sendable, Equatable {
    public let expert: Int
    public let fromRank: Int
    public let fromSlot: Int
    public let toRank: Int
    public let toSlot: Int
}

/// The transfers of one layer.
public struct LayerTransferPlan: Sendable, Equatable {
    /// One entry per slot of the new placement, in slot order.
    public let slots: [SlotTransfer]
    /// `sends[rank]`: the sends rank `rank` performs (old ranks), in destination slot order.
    public let sends: [[ExpertSend]]

    public var receiveCount: Int { slots.reduce(0) { if case .receive = $1.source { return $0 + 1 } else { return $0 } } }
    public var localCopyCount: Int { slots.reduce(0) { if case .localCopy = $1.source { return $0 + 1 } else { return $0 } } }
    public var keepCount: Int { slots.reduce(0) { $1.source == .keep ? $0 + 1 : $0 } }
    public var checkpointLoadCount: Int { slots.reduce(0) { $1.source == .loadFromCheckpoint ? $0 + 1 : $0 } }
}

/// A peer-to-peer plan taking every layer from an old placement to a new one, moving only
/// the experts whose slot changed. Both placements use `slotsPerRank` slots per rank;
/// the rank counts may differ (a resize): ranks only in the old placement only send,
/// ranks only in the new one only receive.
///
/// Rules per new slot, in this order: same expert already in this slot → `keep`; the
/// rank holds the expert in another old slot → `localCopy` from the lowest such slot;
/// some other rank holds it → `receive` from one holder (each holder offers its lowest
/// slot of the expert); nobody holds it → `loadFromCheckpoint`; −1 → `empty`.
/// Sender choice is deterministic and spreads traffic: the holder with the fewest sends
/// so far in this layer, ties broken round-robin per expert (starting after the holder
/// that served this expert last).
public struct TransferPlan: Sendable, Equatable {
    public let slotsPerRank: Int
    public let oldNumRanks: Int
    public let newNumRanks: Int
    public let layers: [LayerTransferPlan]

    /// - Parameters:
    ///   - old: `[layers][P_old]`, expert per slot (−1 empty) before.
    ///   - new: `[layers][P_new]`, expert per slot (−1 empty) after.
    ///   - slotsPerRank: slots on each rank, dividing both `P_old` and `P_new`.
    /// - Throws: `EbbError(.invalidArgument)` on mismatched layer counts, ragged rows,
    ///   sizes not divisible by `slotsPerRank`, or ids below −1.
    public init(old: [[Int]], new: [[Int]], slotsPerRank: Int) throws {
        guard slotsPerRank >= 1 else {
            throw EbbError(.invalidArgument, "TransferPlan: slotsPerRank must be at least 1, got \(slotsPerRank)")
        }
        guard old.count == new.count else {
            throw EbbError(.invalidArgument, "TransferPlan: old placement has \(old.count) layers, new has \(new.count)")
        }
        let oldP = old.first?.count ?? 0
        let newP = new.first?.count ?? 0
        guard oldP % slotsPerRank == 0, newP % slotsPerRank == 0 else {
            throw EbbError(.invalidArgument, "TransferPlan: slot counts \(oldP) and \(newP) are not multiples of \(slotsPerRank) slots per rank")
        }
        for (layer, (o, n)) in zip(old, new).enumerated() {
            guard o.count == oldP, n.count == newP else {
                throw EbbError(.invalidArgument, "TransferPlan: layer \(layer) has \(o.count) old and \(n.count) new slots, expected \(oldP) and \(newP)")
            }
            guard o.allSatisfy({ $0 >= -1 }), n.allSatisfy({ $0 >= -1 }) else {
                throw EbbError(.invalidArgument, "TransferPlan: layer \(layer) has an expert id below -1")
            }
        }
        self.slotsPerRank = slotsPerRank
        self.oldNumRanks = oldP / slotsPerRank
        self.newNumRanks = newP / slotsPerRank
        self.layers = zip(old, new).map {
            TransferPlan.planLayer(old: $0.0, new: $0.1, slotsPerRank: slotsPerRank, oldNumRanks: oldP / slotsPerRank)
        }
    }

    /// A plan between two placements with the same slots per rank.
    public init(old: EPLBPlacement, new: EPLBPlacement) throws {
        guard old.slotsPerRank == new.slotsPerRank else {
            throw EbbError(.invalidArgument, "TransferPlan: old placement has \(old.slotsPerRank) slots per rank, new has \(new.slotsPerRank)")
        }
        try self.init(old: old.physicalToLogical, new: new.physicalToLogical, slotsPerRank: new.slotsPerRank)
    }

    static func planLayer(old: [Int], new: [Int], slotsPerRank: Int, oldNumRanks: Int) -> LayerTransferPlan {
        // holders[e]: (rank, lowest old slot of e on that rank), ranks ascending.
        var holders: [Int: [(rank: Int, slot: Int)]] = [:]
        // local[rank][e]: lowest old slot of e on rank.
        var local: [[Int: Int]] = Array(repeating: [:], count: oldNumRanks)
        for (slot, e) in old.enumerated() where e >= 0 {
            let r = slot / slotsPerRank
            if local[r][e] == nil {
                local[r][e] = slot
                holders[e, default: []].append((r, slot))
            }
        }
        var sendsPerRank = Array(repeating: 0, count: oldNumRanks)
        var cursor: [Int: Int] = [:]   // per expert: holder index to try first
        var sends: [[ExpertSend]] = Array(repeating: [], count: oldNumRanks)
        var slots: [SlotTransfer] = []
        slots.reserveCapacity(new.count)
        for (slot, e) in new.enumerated() {
            let r = slot / slotsPerRank
            let source: SlotSource
            if e < 0 {
                source = .empty
            } else if slot < old.count && old[slot] == e {
                source = .keep
            } else if r < oldNumRanks, let from = local[r][e] {
                source = .localCopy(fromSlot: from)
            } else if let hs = holders[e], !hs.isEmpty {
                let start = cursor[e, default: 0] % hs.count
                var pick = start
                for k in 0..<hs.count {
                    let i = (start + k) % hs.count
                    if sendsPerRank[hs[i].rank] < sendsPerRank[hs[pick].rank] { pick = i }
                }
                cursor[e] = pick + 1
                let h = hs[pick]
                sendsPerRank[h.rank] += 1
                sends[h.rank].append(ExpertSend(expert: e, fromRank: h.rank, fromSlot: h.slot, toRank: r, toSlot: slot))
                source = .receive(fromRank: h.rank, fromSlot: h.slot)
            } else {
                source = .loadFromCheckpoint
            }
            slots.append(SlotTransfer(slot: slot, expert: e, source: source))
        }
        return LayerTransferPlan(slots: slots, sends: sends)
    }

    /// Simulates the plan on per-rank weight stores and returns the new stores.
    ///
    /// - Parameter stores: `[layers][oldNumRanks][slotsPerRank]`, the expert id whose
    ///   weights each slot holds (−1 empty) — the old placement.
    /// - Returns: `[layers][newNumRanks][slotsPerRank]` after every send, receive, local
    ///   copy and checkpoint load of the plan; all reads see the old stores.
    /// - Throws: `EbbError(.invalidArgument)` when the stores' shape does not match the
    ///   plan, and `EbbError(.internal)` when a source does not hold what the plan says,
    ///   or a receive has no matching send.
    public func apply(to stores: [[[Int]]]) throws -> [[[Int]]] {
        guard stores.count == layers.count else {
            throw EbbError(.invalidArgument, "TransferPlan.apply: \(stores.count) layers of stores for a \(layers.count)-layer plan")
        }
        var result: [[[Int]]] = []
        for (layer, (plan, old)) in zip(layers, stores).enumerated() {
            guard old.count == oldNumRanks, old.allSatisfy({ $0.count == slotsPerRank }) else {
                throw EbbError(.invalidArgument, "TransferPlan.apply: layer \(layer) stores are not \(oldNumRanks)×\(slotsPerRank)")
            }
            func read(_ slot: Int) -> Int? {
                let r = slot / slotsPerRank
                guard slot >= 0, r < old.count else { return nil }
                return old[r][slot % slotsPerRank]
            }
            // Deliver every send: (toSlot) -> weights sent.
            var inbox: [Int: (fromRank: Int, fromSlot: Int, expert: Int)] = [:]
            for (rank, list) in plan.sends.enumerated() {
                for s in list {
                    guard s.fromRank == rank, s.fromSlot / slotsPerRank == rank, let w = read(s.fromSlot), w == s.expert else {
                        throw EbbError(.internal, "TransferPlan.apply: layer \(layer) rank \(rank) cannot send expert \(s.expert) from slot \(s.fromSlot)")
                    }
                    guard inbox[s.toSlot] == nil else {
                        throw EbbError(.internal, "TransferPlan.apply: layer \(layer) slot \(s.toSlot) receives twice")
                    }
                    inbox[s.toSlot] = (rank, s.fromSlot, w)
                }
            }
            var new = Array(repeating: Array(repeating: -1, count: slotsPerRank), count: newNumRanks)
            for t in plan.slots {
                let r = t.slot / slotsPerRank
                let w: Int
                switch t.source {
                case .empty:
                    w = -1
                case .keep:
                    guard let v = read(t.slot) else { throw EbbError(.internal, "TransferPlan.apply: layer \(layer) keeps missing slot \(t.slot)") }
                    w = v
                case .localCopy(let from):
                    guard from / slotsPerRank == r, let v = read(from) else {
                        throw EbbError(.internal, "TransferPlan.apply: layer \(layer) slot \(t.slot) copies from slot \(from) of another rank")
                    }
                    w = v
                case .receive(let fromRank, let fromSlot):
                    guard let m = inbox.removeValue(forKey: t.slot), m.fromRank == fromRank, m.fromSlot == fromSlot else {
                        throw EbbError(.internal, "TransferPlan.apply: layer \(layer) slot \(t.slot) has no matching send")
                    }
                    w = m.expert
                case .loadFromCheckpoint:
                    w = t.expert
                }
                new[r][t.slot % slotsPerRank] = w
            }
            guard inbox.isEmpty else {
                throw EbbError(.internal, "TransferPlan.apply: layer \(layer) has \(inbox.count) sends nobody receives")
            }
            result.append(new)
        }
        return result
    }

    /// Per-rank stores of a placement, `[layers][ranks][slotsPerRank]`, for `apply`.
    public static func stores(of physicalToLogical: [[Int]], slotsPerRank: Int) -> [[[Int]]] {
        guard slotsPerRank >= 1 else { return [] }
        return physicalToLogical.map { row in
            stride(from: 0, to: row.count, by: slotsPerRank).map { Array(row[$0..<min(row.count, $0 + slotsPerRank)]) }
        }
    }
}
