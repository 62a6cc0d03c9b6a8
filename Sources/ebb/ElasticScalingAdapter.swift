import EbbCluster
import EbbCore
import EbbServer

/// The coordinator's resizing, as the HTTP routes call it.
struct CoordinatorScaling: ElasticScaling {
    let coordinator: Coordinator
    var autoscaler: Autoscaler?
    var maxRanks: Int
    /// What the dashboard plots (started with the deployment).
    var timeline: TimelineRecorder?

    static func target(newSize: Int?, removeRanks: [Int]?) -> ResizeTarget {
        newSize.map { .size($0) } ?? .remove(removeRanks ?? [])
    }

    func scale(newSize: Int?, removeRanks: [Int]?, drainTimeout: Double?, operationId: String?) async -> ScaleAnswer {
        let target = Self.target(newSize: newSize, removeRanks: removeRanks)
        do {
            let event: ResizeEvent
            if let operationId {
                let op = try coordinator.startResize(target, drainTimeout: drainTimeout, operationId: operationId)
                event = try await coordinator.result(of: op.id)
            } else {
                event = try await coordinator.resize(target, drainTimeout: drainTimeout)
            }
            return ScaleAnswer(status: 200, body: .orderedObject(keys: ["message", "generation", "seconds"], values: [
                "message": .string("Scaled to \(event.toRanks) data parallel engines"),
                "generation": .number(Double(event.generation)),
                "seconds": .number(event.totalSeconds),
            ]))
        } catch {
            return Self.answer(error)
        }
    }

    func startScale(newSize: Int?, removeRanks: [Int]?, drainTimeout: Double?, operationId: String?) -> ScaleAnswer {
        do {
            let op = try coordinator.startResize(Self.target(newSize: newSize, removeRanks: removeRanks), drainTimeout: drainTimeout,
                                                 operationId: operationId)
            return ScaleAnswer(status: 202, body: op.json)
        } catch {
            return Self.answer(error)
        }
    }

    func operation(_ id: String) -> JSONValue? { coordinator.operation(id)?.json }

    func plan(newSize: Int?, removeRanks: [Int]?) -> ScaleAnswer {
        do {
            return ScaleAnswer(status: 200, body: try coordinator.plan(Self.target(newSize: newSize, removeRanks: removeRanks)).json)
        } catch {
            return Self.answer(error)
        }
    }

    /// A refused or failed resize in OpenAI's error shape.
    static func answer(_ error: any Error) -> ScaleAnswer {
        guard let e = error as? ResizeError else {
            return ScaleAnswer(status: 500, body: .object(["error": .object(["message": .string("\(error)"), "code": .number(500)])]))
        }
        let (status, type): (Int, String)
        switch e {
        case .invalid: (status, type) = (400, "BadRequestError")
        case .busy: (status, type) = (409, "ConflictError")
        case .rolledBack, .deploymentFailed: (status, type) = (500, "InternalServerError")
        }
        return ScaleAnswer(status: status, body: .object(["error": .object([
            "message": .string(e.message), "type": .string(type), "code": .number(Double(status)),
        ])]))
    }

    var isScaling: Bool { coordinator.isResizing }

    func timelineJSON() -> JSONValue { (timeline?.timeline ?? Timeline()).json }

    func statusJSON() -> JSONValue {
        let status = coordinator.elasticStatusJSON()
        guard case .orderedObject(let keys, let values) = status else { return status }
        var all = values
        all["autoscaler"] = autoscaler?.json ?? .null
        return .orderedObject(keys: keys + ["autoscaler"], values: all)
    }

    func autoscale(enabled: Bool?, minRanks: Int?, maxRanks: Int?, cooldown: Double?) -> ScaleAnswer {
        guard let autoscaler else {
            return ScaleAnswer(status: 404, body: .object(["error": .object([
                "message": .string("the autoscaler is off: start `ebb serve` with --autoscale"), "type": .string("NotFoundError"),
                "code": .number(404),
            ])]))
        }
        do {
            try autoscaler.control(enabled: enabled, minRanks: minRanks, maxRanks: maxRanks, cooldown: cooldown, limit: self.maxRanks)
            return ScaleAnswer(status: 200, body: autoscaler.json)
        } catch {
            return Self.answer(error)
        }
    }

    func metricsSnapshot() -> ElasticMetricsSnapshot {
        let failures = Dictionary(coordinator.incidents.map { ($0.outcome, 1) }, uniquingKeysWith: +)
        return ElasticMetricsSnapshot(generation: coordinator.generation, ranks: coordinator.worldSize,
                                      resizes: coordinator.resizeOutcomeCounts, lastPhases: coordinator.resizeEvents.last?.phases ?? [],
                                      rankFailures: failures, resubmittedRequests: coordinator.resubmittedRequests,
                                      autoscaleDecisions: autoscaler?.decisionCounts)
    }
}
