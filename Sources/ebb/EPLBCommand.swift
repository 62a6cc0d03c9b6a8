import ArgumentParser
import EbbCore
import EbbEPLB
import Foundation

/// `ebb eplb`: plans an expert placement from a load file with DeepSeek's policy and prints
/// it with its balancedness — for sizing redundant experts before a deployment.
struct EPLBCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eplb", abstract: "Compute an expert placement (DeepSeek EPLB) for a load",
        discussion: "FILE.json holds the load as [[...], ...]: one row per MoE layer, one non-negative number per logical expert.")

    @Option(help: "JSON file with the load, one row per layer")
    var load: String

    @Option(help: "Physical expert slots over all ranks (experts + redundant)")
    var slots: Int

    @Option(help: "Expert groups of the router (1 = none)")
    var groups: Int = 1

    @Option(help: "Nodes (ranks of a node are contiguous)")
    var nodes: Int = 1

    @Option(help: "Expert-parallel ranks")
    var ranks: Int

    @Flag(help: "Print the placement as JSON")
    var json = false

    func run() throws {
        try runReportingErrors {
            let rows = try Self.parseLoad(load)
            let placement = try rebalanceExperts(load: rows, numPhysicalSlots: slots, numGroups: groups,
                                                 numNodes: nodes, numRanks: ranks)
            if json {
                let out: JSONValue = .orderedObject(keys: ["physicalToLogical", "logicalToPhysical", "replicaCount"], values: [
                    "physicalToLogical": .array(placement.physicalToLogical.map { .array($0.map { .number(Double($0)) }) }),
                    "logicalToPhysical": .array(placement.logicalToPhysical.map { .array($0.map { .array($0.map { .number(Double($0)) }) }) }),
                    "replicaCount": .array(placement.replicaCount.map { .array($0.map { .number(Double($0)) }) }),
                ])
                print(out.serialized())
                return
            }
            let before = try EPLBPlacement.contiguous(numLayers: rows.count, numLogicalExperts: rows[0].count,
                                                      numPhysicalSlots: slots, numRanks: ranks)
            let b0 = try layerBalancedness(load: rows, placement: before)
            let b1 = try layerBalancedness(load: rows, placement: placement)
            print("layer  balancedness (contiguous → EPLB)  physicalToLogical")
            for l in 0..<rows.count {
                print(String(format: "%5d  %.4f → %.4f                  ", l, b0[l], b1[l]) + placement.physicalToLogical[l].map(String.init).joined(separator: ","))
            }
            print(String(format: "mean   %.4f → %.4f", b0.reduce(0, +) / Double(b0.count), b1.reduce(0, +) / Double(b1.count)))
        }
    }

    static func parseLoad(_ path: String) throws -> [[Double]] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw EbbError(.invalidArgument, "cannot read the load file \(path)")
        }
        let value: JSONValue
        do { value = try JSONValue.parse(data) } catch {
            throw EbbError(.invalidArgument, "\(path) is not JSON: \(error)")
        }
        guard let layers = value.arrayValue, !layers.isEmpty else {
            throw EbbError(.invalidArgument, "\(path): expected a non-empty array of rows, one per layer")
        }
        return try layers.enumerated().map { i, row in
            guard let cells = row.arrayValue, !cells.isEmpty else {
                throw EbbError(.invalidArgument, "\(path): row \(i) is not a non-empty array of numbers")
            }
            return try cells.enumerated().map { j, cell in
                guard let v = cell.doubleValue, v.isFinite, v >= 0 else {
                    throw EbbError(.invalidArgument, "\(path): load[\(i)][\(j)] must be a non-negative number")
                }
                return v
            }
        }
    }
}
