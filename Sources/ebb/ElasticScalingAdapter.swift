import EbbCluster
import EbbCore
import EbbServer

/// The coordinator's resizing, as the HTTP routes call it.
struct CoordinatorScaling: ElasticScaling {
    let coordinator: Coordinator

    func scale(newSize: Int?, removeRanks: [Int]?, drainTimeout: Double?) async -> ScaleAnswer {
        let target: ResizeTarget = newSize.map { .size($0) } ?? .remove(removeRanks ?? [])
        do {
            let event = try await coordinator.resize(target, drainTimeout: drainTimeout)
            return ScaleAnswer(status: 200, body: .orderedObject(keys: ["message", "generation", "seconds"], values: [
                "message": .string("Scaled to \(event.toRanks) data parallel engines"),
                "generation": .number(Double(event.generation)),
                "seconds": .number(event.totalSeconds),
            ]))
        } catch let f as ResizeFailure {
            return ScaleAnswer(status: f.status, body: .object(["error": .object([
                "message": .string(f.message), "type": .string(f.status == 409 ? "ConflictError" : f.status == 400 ? "BadRequestError" : "InternalServerError"),
                "code": .number(Double(f.status)),
            ])]))
        } catch {
            return ScaleAnswer(status: 500, body: .object(["error": .object(["message": .string("\(error)"), "code": .number(500)])]))
        }
    }

    var isScaling: Bool { coordinator.isResizing }

    func statusJSON() -> JSONValue { coordinator.elasticStatusJSON() }

    func metricsSnapshot() -> ElasticMetricsSnapshot {
        let failures = Dictionary(coordinator.incidents.map { ($0.outcome, 1) }, uniquingKeysWith: +)
        return ElasticMetricsSnapshot(generation: coordinator.generation, ranks: coordinator.worldSize,
                                      resizes: coordinator.resizeOutcomeCounts, lastPhases: coordinator.resizeEvents.last?.phases ?? [],
                                      rankFailures: failures, resubmittedRequests: coordinator.resubmittedRequests)
    }
}
