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
        } catch let e as ResizeError {
            let (status, type): (Int, String)
            switch e {
            case .invalid: (status, type) = (400, "BadRequestError")
            case .busy: (status, type) = (409, "ConflictError")
            case .rolledBack, .deploymentFailed: (status, type) = (500, "InternalServerError")
            }
            return ScaleAnswer(status: status, body: .object(["error": .object([
                "message": .string(e.message), "type": .string(type), "code": .number(Double(status)),
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
