import EbbEngine

/// The requests the coordinator has sent to ranks: which engine runs each, the tokens its
/// client already has (a request whose rank is lost continues after them), and per engine
/// the requests it holds and how many it was ever sent. A plain value: the coordinator
/// owns it under its lock, picks ranks with `LoadBalancer`, and sends the messages.
struct RequestRouter {
    struct Tracked {
        var engine: String
        var continuation: AsyncStream<EngineEvent>.Continuation
        var request: EngineRequest
        /// Tokens streamed to the client so far.
        var generated: [Int] = []
        var submitted: ContinuousClock.Instant
        var lastTokenAt: ContinuousClock.Instant?
    }

    /// Time to first token, time per output token and tokens, as clients got them.
    private(set) var window = ServiceWindow()

    private(set) var requests: [String: Tracked] = [:]
    private var live: [String: Set<String>] = [:]
    private var assigned: [String: Int] = [:]

    func tracked(_ id: String) -> Tracked? { requests[id] }

    /// Requests `engine` holds (sent and not finished).
    func liveCount(on engine: String) -> Int { live[engine]?.count ?? 0 }

    /// Requests ever sent to `engine`.
    func assignedCount(to engine: String) -> Int { assigned[engine] ?? 0 }

    /// Requests `engine` runs now.
    func requests(on engine: String) -> [(id: String, tracked: Tracked)] {
        requests.filter { $0.value.engine == engine }.map { ($0.key, $0.value) }
    }

    /// Starts tracking a new request on `engine`; false if its id is taken.
    mutating func track(_ request: EngineRequest, continuation: AsyncStream<EngineEvent>.Continuation, on engine: String) -> Bool {
        guard requests[request.id] == nil else { return false }
        requests[request.id] = Tracked(engine: engine, continuation: continuation, request: request, submitted: .now)
        window.arrived(at: .now)
        assign(request.id, to: engine)
        return true
    }

    /// Request `id` continues on `engine` (a migration or a re-submission).
    mutating func move(_ id: String, to engine: String) {
        guard let from = requests[id]?.engine else { return }
        live[from]?.remove(id)
        requests[id]?.engine = engine
        assign(id, to: engine)
    }

    private mutating func assign(_ id: String, to engine: String) {
        live[engine, default: []].insert(id)
        assigned[engine, default: 0] += 1
    }

    /// An event for request `id` from `engine`: where to deliver it and whether the request
    /// ended (then it is forgotten). Nil when `id` does not run on `engine`.
    mutating func deliver(_ event: EngineEvent, for id: String, from engine: String, now: ContinuousClock.Instant = .now)
        -> (continuation: AsyncStream<EngineEvent>.Continuation, done: Bool)? {
        guard let t = requests[id], t.engine == engine else { return nil }
        let done: Bool
        switch event {
        case .error: done = true
        case .output(let x):
            done = x.isFinished
            requests[id]?.generated += x.newTokenIds
            if !x.newTokenIds.isEmpty {
                if let last = t.lastTokenAt {
                    window.nextTokens(perToken: (now - last).seconds / Double(x.newTokenIds.count), at: now)
                } else {
                    window.firstToken(after: (now - t.submitted).seconds, at: now)
                }
                window.delivered(x.newTokenIds.count, at: now)
                requests[id]?.lastTokenAt = now
            }
        }
        if done {
            window.finished(after: (now - t.submitted).seconds, at: now)
            remove(id)
        }
        return (t.continuation, done)
    }

    /// Forgets request `id` (finished, or given up); returns what was tracked.
    @discardableResult
    mutating func remove(_ id: String) -> Tracked? {
        guard let t = requests.removeValue(forKey: id) else { return nil }
        live[t.engine]?.remove(id)
        return t
    }

    /// Forgets every request (the deployment failed) and returns them.
    mutating func removeAll() -> [Tracked] {
        let all = Array(requests.values)
        requests = [:]
        live = [:]
        return all
    }
}
