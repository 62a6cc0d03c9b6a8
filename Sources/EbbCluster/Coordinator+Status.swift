import EbbControl
import EbbCore
import EbbEngine
import Foundation

extension Coordinator {
    /// `GET /elastic_ep/status`: generation, ranks with their state and load, the placement
    /// summary, and the last resizes with their phase timings.
    public func elasticStatusJSON() -> JSONValue {
        lock.withLock {
            func num(_ x: Double) -> JSONValue { .number(x.isFinite ? x : 0) }
            var ranks: [JSONValue] = []
            let members = membership.members
            var ids = members
            if let r = resize { ids += r.joining.filter { !ids.contains($0) } }
            for id in ids {
                let e = membership.engines[id]
                let state: String
                if recovery?.isFenced(id) == true {
                    state = "lost"
                } else if resize?.leaving.contains(id) == true || e?.released == true {
                    state = "leaving"
                } else if resize?.isJoining(id) == true {
                    state = "joining"
                } else {
                    state = e?.ready != nil ? "serving" : "starting"
                }
                let load = e?.load ?? EngineStats()
                ranks.append(.orderedObject(keys: ["rank", "engine_id", "state", "pid", "running", "waiting", "kv_cache_usage", "requests_assigned"], values: [
                    "pid": e?.pid.map { .number(Double($0)) } ?? .null,
                    "rank": members.firstIndex(of: id).map { .number(Double($0)) } ?? .null,
                    "engine_id": .string(id), "state": .string(state),
                    "running": num(Double(load.running)), "waiting": num(Double(load.waiting)),
                    "kv_cache_usage": num(load.kvCacheUsage), "requests_assigned": num(Double(router.assignedCount(to: id))),
                ]))
            }
            let first = members.first.flatMap { membership.engines[$0] }
            let eplb = first?.load.eplb ?? EPLBStats()
            let placement: JSONValue = .orderedObject(keys: ["num_experts", "slots_per_rank", "physical_slots", "rearrangements", "layer_balancedness", "slot_load", "slot_expert"], values: [
                "num_experts": num(Double(first?.ready?.numExperts ?? 0)),
                "slots_per_rank": num(Double(first?.ready?.slotsPerRank ?? 0)),
                "physical_slots": num(Double(Int(first?.ready?.slotsPerRank ?? 0) * members.count)),
                "rearrangements": num(Double(eplb.rearrangements)),
                "layer_balancedness": .array(eplb.layerBalancedness.map(num)),
                "slot_load": .array(eplb.slotLoad.map { .array($0.map(num)) }),
                "slot_expert": .array(eplb.slotExperts.map { .array($0.map { num(Double($0)) }) }),
            ])
            let events: [JSONValue] = resizeHistory.suffix(10).map { ev in
                .orderedObject(keys: ["generation", "from", "to", "outcome", "error", "total_seconds", "bytes_moved", "migrated_requests",
                                      "experts_checked", "expert_mismatches", "unroutable_experts", "phases"], values: [
                    "experts_checked": num(Double(ev.expertsChecked)), "expert_mismatches": num(Double(ev.expertMismatches)),
                    "unroutable_experts": num(Double(ev.unroutableExperts)),
                    "generation": num(Double(ev.generation)), "from": num(Double(ev.fromRanks)), "to": num(Double(ev.toRanks)),
                    "outcome": .string(ev.outcome), "error": ev.error.map { .string($0) } ?? .null,
                    "total_seconds": num(ev.totalSeconds), "bytes_moved": num(Double(ev.bytesMoved)),
                    "migrated_requests": num(Double(ev.migratedRequests)),
                    "phases": .orderedObject(keys: ev.phases.map(\.0), values: Dictionary(ev.phases.map { ($0.0, num($0.1)) }, uniquingKeysWith: { a, _ in a })),
                ])
            }
            return .orderedObject(keys: ["generation", "is_scaling", "is_recovering", "ranks", "placement", "events", "failures"], values: [
                "generation": num(Double(membership.generation)), "is_scaling": .bool(resize != nil),
                "is_recovering": .bool(recovery?.isRecovering ?? false), "failures": failuresJSONLocked(),
                "ranks": .array(ranks), "placement": placement, "events": .array(events),
            ])
        }
    }
}

extension Coordinator {
    /// The lost-rank incidents for `/elastic_ep/status` (call under the lock).
    func failuresJSONLocked() -> JSONValue {
        func num(_ x: Double) -> JSONValue { .number(x.isFinite ? x : 0) }
        var list: [JSONValue] = []
        for i in (recovery?.incidents ?? []).suffix(20) {
            let record = lossRecords[i.engine]
            let report = i.generation.flatMap { recoveryReports[$0] }
            let phases: [(String, Double)] = report?.phases ?? []
            var phaseValues: [String: JSONValue] = [:]
            for (name, seconds) in phases where phaseValues[name] == nil { phaseValues[name] = num(seconds) }
            let rank: JSONValue = i.rank.map { num(Double($0)) } ?? .null
            let detected: JSONValue = record.map { num($0.unixTime) } ?? .null
            let generation: JSONValue = i.generation.map { num(Double($0)) } ?? .null
            let recovered: JSONValue = i.recoveredAt.map { num(($0 - i.detectedAt).seconds) } ?? .null
            let error: JSONValue = i.error.map { .string($0) } ?? .null
            var values: [String: JSONValue] = [:]
            values["engine_id"] = .string(i.engine)
            values["rank"] = rank
            values["cause"] = .string(i.cause.rawValue)
            values["detected_unix"] = detected
            values["outcome"] = .string(i.outcome)
            values["generation"] = generation
            values["attempts"] = num(Double(i.attempts))
            values["recovery_seconds"] = recovered
            values["requests_resubmitted"] = num(Double(record?.resubmitted ?? 0))
            values["error"] = error
            values["experts_checked"] = num(Double(report?.checked ?? 0))
            values["expert_mismatches"] = num(Double(report?.mismatches ?? 0))
            values["phases"] = .orderedObject(keys: phases.map(\.0), values: phaseValues)
            list.append(.orderedObject(keys: ["engine_id", "rank", "cause", "detected_unix", "outcome", "generation", "attempts",
                                              "recovery_seconds", "requests_resubmitted", "experts_checked", "expert_mismatches", "error",
                                              "phases"], values: values))
        }
        return .array(list)
    }
}
