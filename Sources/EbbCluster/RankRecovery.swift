import EbbCore

/// How a lost rank was noticed.
public enum LossCause: String, Sendable, Equatable {
    /// The launcher saw its process exit.
    case processExited = "process_exited"
    /// Its control-plane stream closed.
    case controlStreamClosed = "control_stream_closed"
    /// It sent nothing (no heartbeat) for the rank-failure timeout.
    case heartbeatTimeout = "heartbeat_timeout"
    /// It reported a failure of its own.
    case rankFailed = "rank_failed"
}

/// The coordinator's side of surviving lost ranks, as a state machine: events in (a rank
/// lost, a rank whose data plane failed, a recovery result, the clock), actions out (fence,
/// re-submit, start a recovery, switch, fail). The coordinator runs the actions; this type
/// holds no lock, starts nothing and reads no clock.
///
/// A lost member is fenced (its process killed, so a hung rank cannot come back) and its
/// requests continue on the survivors. With expert parallelism the survivors' data plane
/// is broken too: once no resize runs, a recovery over the survivors starts (a generation
/// of its own); a recovery that fails or times out is tried again over whoever is left, up
/// to `maxAttempts` in a row. Without expert parallelism the ranks share no data plane and
/// the lost one simply leaves the members. A rank that reports its data plane failed while
/// nobody is known lost gets `failureTimeout` for the culprit to show; then its generation
/// is formed again over every member.
public struct RankRecovery: Sendable {
    public struct Config: Sendable {
        /// The ranks step in lockstep over a data plane (expert parallelism), so a loss
        /// needs a recovery; false: plain data parallelism.
        public var lockstep: Bool
        /// Whether a lockstep deployment can recover (EPLB placements, elastic EP).
        public var canRecover: Bool
        public var slotsPerRank: Int
        public var numExperts: Int
        /// How long one recovery attempt may take.
        public var attemptTimeout: Duration
        /// How long a data-plane failure waits for a lost rank to be identified.
        public var failureTimeout: Duration
        public var maxAttempts: Int

        public init(lockstep: Bool, canRecover: Bool, slotsPerRank: Int, numExperts: Int,
                    attemptTimeout: Duration = .seconds(60), failureTimeout: Duration = .seconds(5), maxAttempts: Int = 3) {
            self.lockstep = lockstep
            self.canRecover = canRecover
            self.slotsPerRank = slotsPerRank
            self.numExperts = numExperts
            self.attemptTimeout = attemptTimeout
            self.failureTimeout = failureTimeout
            self.maxAttempts = maxAttempts
        }
    }

    /// What the coordinator knows when an event comes.
    public struct View: Sendable {
        /// Engine ids of the serving generation, in rank order.
        public var members: [String]
        public var resizing: Bool
        public init(members: [String], resizing: Bool) {
            self.members = members
            self.resizing = resizing
        }
    }

    public enum Event: Sendable, Equatable {
        case lost(String, LossCause)
        /// A member's collective failed; it waits for a recovery.
        case dataPlaneFailed(String)
        /// A survivor's answer to recovery `generation`.
        case result(engine: String, generation: UInt64, ok: Bool, error: String)
        /// A resize ended (committed or rolled back); `View` has the members now.
        case resizeEnded
        case tick
    }

    public enum Action: Sendable, Equatable {
        /// Kill the engine's process and stop routing to it.
        case fence(String)
        /// Its requests continue on the survivors.
        case resubmit(from: String)
        /// Send the recovery to `survivors` (from `members`, old rank order).
        case startRecovery(generation: UInt64, survivors: [String], from: [String])
        /// The survivors serve: `members` at `generation` (unchanged without lockstep).
        case switchMembers(generation: UInt64?, members: [String])
        /// The deployment cannot go on.
        case fail(String)
    }

    /// One failure, for `/elastic_ep/status`.
    public struct Incident: Sendable, Equatable {
        public var engine: String
        public var rank: Int?
        public var cause: LossCause
        public var detectedAt: ContinuousClock.Instant
        public var recoveredAt: ContinuousClock.Instant?
        public var generation: UInt64?
        public var attempts = 0
        public var outcome = "recovering"
        public var error: String?
    }

    struct Attempt: Sendable {
        var generation: UInt64
        var survivors: [String]
        var from: [String]
        var started: ContinuousClock.Instant
        var results: [String: Bool] = [:]
        var error: String?
    }

    public let config: Config
    /// Lost engines not yet recovered from, with when they were noticed.
    private(set) var lost: [String: ContinuousClock.Instant] = [:]
    /// Every engine ever declared lost (they never come back).
    private(set) var fenced: Set<String> = []
    /// Members that reported a failed data plane, and since when.
    private(set) var failedDataPlane: [String: ContinuousClock.Instant] = [:]
    private(set) var attempt: Attempt?
    private(set) var attemptsInARow = 0
    private(set) var lastGeneration: UInt64
    public private(set) var incidents: [Incident] = []
    public private(set) var failed = false

    public init(config: Config, generation: UInt64) {
        self.config = config
        self.lastGeneration = generation
    }

    /// Whether a recovery is needed or running (new requests then wait on the survivors).
    public var isRecovering: Bool { attempt != nil || !lost.isEmpty || !failedDataPlane.isEmpty }

    public func isFenced(_ engine: String) -> Bool { fenced.contains(engine) }

    /// Whether `generation` is the recovery attempt running now.
    public func isAttempt(_ generation: UInt64) -> Bool { attempt?.generation == generation }

    /// The recovery attempt running now: its generation and survivors.
    public var running: (generation: UInt64, survivors: [String])? { attempt.map { ($0.generation, $0.survivors) } }

    /// The generation numbers a resize must not reuse.
    public mutating func noteGeneration(_ g: UInt64) { lastGeneration = max(lastGeneration, g) }

    public mutating func handle(_ event: Event, now: ContinuousClock.Instant, view: View) -> [Action] {
        guard !failed else { return [] }
        var actions: [Action] = []
        switch event {
        case .lost(let engine, let cause):
            guard !fenced.contains(engine) else { return [] }
            fenced.insert(engine)
            actions.append(.fence(engine))
            guard let rank = view.members.firstIndex(of: engine) else { return actions }  // a joiner or a leaver
            lost[engine] = now
            failedDataPlane[engine] = nil
            incidents.append(Incident(engine: engine, rank: rank, cause: cause, detectedAt: now))
            if incidents.count > 50 { incidents.removeFirst(incidents.count - 50) }
            actions.append(.resubmit(from: engine))
            if let a = attempt, a.survivors.contains(engine) {
                // A survivor died during the recovery: start over without it.
                attempt = nil
            }
        case .dataPlaneFailed(let engine):
            guard view.members.contains(engine), !fenced.contains(engine), config.lockstep else { return [] }
            if failedDataPlane[engine] == nil { failedDataPlane[engine] = now }
        case .result(let engine, let generation, let ok, let error):
            guard var a = attempt, a.generation == generation, a.survivors.contains(engine) else { return [] }
            a.results[engine] = ok
            if !ok && a.error == nil { a.error = error }
            attempt = a
            if !ok {
                attempt = nil
                actions += retry(now: now, view: view, reason: error)
                return actions
            }
            if a.survivors.allSatisfy({ a.results[$0] == true }) {
                attempt = nil
                attemptsInARow = 0
                lost = [:]
                failedDataPlane = [:]
                updateOpenIncidents {
                    $0.outcome = "recovered"
                    $0.recoveredAt = now
                    $0.generation = a.generation
                }
                actions.append(.switchMembers(generation: a.generation, members: a.survivors))
                return actions
            }
        case .resizeEnded:
            break
        case .tick:
            if let a = attempt, now - a.started > config.attemptTimeout {
                attempt = nil
                actions += retry(now: now, view: view, reason: "the recovery to generation \(a.generation) did not finish within \(config.attemptTimeout)")
                return actions
            }
        }
        actions += advance(now: now, view: view)
        return actions
    }

    /// Applies `change` to every incident still being recovered from.
    private mutating func updateOpenIncidents(_ change: (inout Incident) -> Void) {
        for i in incidents.indices where incidents[i].outcome == "recovering" { change(&incidents[i]) }
    }

    private mutating func retry(now: ContinuousClock.Instant, view: View, reason: String) -> [Action] {
        updateOpenIncidents { $0.error = reason }
        if attemptsInARow >= config.maxAttempts {
            return failAll("recovering from lost ranks failed \(attemptsInARow) times; the last error: \(reason)")
        }
        return advance(now: now, view: view)
    }

    private mutating func failAll(_ message: String) -> [Action] {
        failed = true
        updateOpenIncidents { $0.outcome = "failed" }
        return [.fail(message)]
    }

    /// Starts what the state calls for: nothing while a resize or an attempt runs.
    private mutating func advance(now: ContinuousClock.Instant, view: View) -> [Action] {
        guard attempt == nil, !view.resizing else { return [] }
        let survivors = view.members.filter { !fenced.contains($0) }
        let lostMembers = view.members.filter { fenced.contains($0) }
        if !config.lockstep {
            guard !lostMembers.isEmpty else { return [] }
            lost = [:]
            updateOpenIncidents {
                $0.outcome = "recovered"
                $0.recoveredAt = now
            }
            return [.switchMembers(generation: nil, members: survivors)]
        }
        let waitedEnough = failedDataPlane.values.contains { now - $0 >= config.failureTimeout }
        guard !lostMembers.isEmpty || waitedEnough else { return [] }
        guard config.canRecover else {
            return failAll("engine core \(lostMembers.first ?? failedDataPlane.keys.sorted().first ?? "?") was lost, and this deployment cannot recover from it (serve with --enable-elastic-ep to keep serving on the survivors)")
        }
        guard !survivors.isEmpty else {
            // Nothing left to recover onto: the front end stays up and answers 503.
            lost = [:]
            failedDataPlane = [:]
            updateOpenIncidents { $0.outcome = "no_survivors" }
            return [.switchMembers(generation: nil, members: [])]
        }
        guard survivors.count * config.slotsPerRank >= config.numExperts else {
            let need = (config.numExperts + config.slotsPerRank - 1) / max(config.slotsPerRank, 1)
            return failAll("the \(survivors.count) surviving ranks of \(config.slotsPerRank) expert slots cannot hold \(config.numExperts) experts (at least \(need) ranks are needed)")
        }
        lastGeneration += 1
        attemptsInARow += 1
        updateOpenIncidents { $0.attempts += 1 }
        attempt = Attempt(generation: lastGeneration, survivors: survivors, from: view.members, started: now)
        return [.startRecovery(generation: lastGeneration, survivors: survivors, from: view.members)]
    }
}
