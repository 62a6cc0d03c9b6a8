/// One resize of a running deployment as a state machine: events in (the clock, joiners
/// connecting, the ranks' results, losses), actions out (launch, reconfigure, switch, abort,
/// stop, finish). The coordinator runs the actions; this type holds no lock, starts nothing
/// and reads no clock.
///
/// The phases: **drain** (only when asked: leaving ranks finish their requests or the
/// drain timeout passes), **launch** (joiners' processes start), **register** (every joiner
/// connects), **prepare** (every old rank prepares the new generation beside the serving one
/// and they switch together in a step vote; the first committed result switches the
/// coordinator too; the resize ends once every old rank answered and every leaving rank
/// handed its requests back). A failure in any phase — a rank's error, a timeout, a joiner that dies,
/// a member that is lost — **rolls back**: the old ranks are told to abort (once they were
/// told anything), the machine waits for their answers (a lost rank's never come), the
/// joiners are stopped and the old generation serves again. A rank that commits during the
/// rollback wins: the vote is collective, so every rank switched.
public struct ResizeMachine: Sendable {
    /// Who is in the old and the new generation.
    public struct Plan: Sendable, Equatable {
        public var generation: UInt64
        /// Engine ids in old rank order, and in new rank order.
        public var oldMembers: [String]
        public var members: [String]
        public init(generation: UInt64, oldMembers: [String], members: [String]) {
            self.generation = generation
            self.oldMembers = oldMembers
            self.members = members
        }

        /// Engines that join, in launch order.
        public var joining: [String] { members.filter { !oldMembers.contains($0) } }
        public var leaving: [String] { oldMembers.filter { !members.contains($0) } }
        /// Every engine involved: the old members, then the joiners (their union ranks).
        public var union: [String] { oldMembers + joining }
    }

    public struct Timeouts: Sendable, Equatable {
        /// How long leaving ranks may take to finish their requests (nil: no drain).
        public var drain: Duration?
        /// Launching and registering joiners, and waiting for the rollback's answers.
        public var phase: Duration
        /// Preparing and switching (weights move here).
        public var prepare: Duration
        /// Waiting for the rollback's answers when a rank was lost (the survivors may be
        /// blocked in a collective with it until their recovery releases them).
        public var rollbackAfterLoss: Duration

        public init(drain: Duration? = nil, phase: Duration) {
            self.drain = drain
            self.phase = phase
            self.prepare = phase * 3
            self.rollbackAfterLoss = min(phase, .seconds(5))
        }
    }

    public enum Phase: String, Sendable, Equatable {
        case drain, launch, register, prepare
        case rollingBack = "rolling_back"
        case committed
        case rolledBack = "rolled_back"
    }

    public enum Event: Sendable, Equatable {
        /// The leaving ranks hold no request any more.
        case leavingIdle
        /// Every joiner's process started (or starting one failed).
        case launched
        case launchFailed(String)
        /// A joiner connected to the control plane.
        case connected(String)
        /// An old member's answer: it switched (`committed`), or why it did not.
        case result(engine: String, committed: Bool, error: String)
        /// A leaving rank handed its unfinished requests back after switching.
        case handedBack(String)
        /// A joiner reported a failure, exited or disconnected.
        case joinerFailed(String)
        /// An engine of the union was lost (fenced).
        case lost(String)
        /// The deployment failed.
        case deploymentFailed(String)
        case tick
    }

    public struct Launch: Sendable, Equatable {
        public var engine: String
        public var rank: Int
        public init(engine: String, rank: Int) {
            self.engine = engine
            self.rank = rank
        }
    }

    public enum Action: Sendable, Equatable {
        /// Start the joiners' processes as ranks of `Plan.members`, then send `.launched`.
        case launch([Launch])
        /// Send the reconfiguration to every engine of the union.
        case sendReconfigure
        /// The new generation serves: members, routing (joiners accept, leavers are released).
        case switchGeneration
        /// Tell the old members to abort the reconfiguration.
        case abort(reason: String)
        /// The old generation serves again: joiners released, leavers accept again.
        case restoreOldGeneration
        /// Stop these engines' processes (leavers after a commit, joiners after a rollback).
        case stop([String])
        case finished(Outcome)
    }

    public enum Outcome: Sendable, Equatable {
        case committed
        case rolledBack(reason: String)
    }

    public let plan: Plan
    public let timeouts: Timeouts
    public private(set) var phase: Phase
    /// Phase name → seconds, in the order they ran.
    public private(set) var phases: [(String, Double)] = []
    /// The old members' answers.
    public private(set) var results: [String: (committed: Bool, error: String)] = [:]
    /// Whether the new generation serves (some rank committed).
    public private(set) var committed = false
    /// Whether the ranks were told (only then do they have anything to roll back).
    public private(set) var reconfigureSent = false
    private(set) var connected: Set<String> = []
    private(set) var lost: Set<String> = []
    private(set) var handedBack: Set<String> = []
    private var failureReason: String?
    private var phaseStarted: ContinuousClock.Instant
    private var deadline: ContinuousClock.Instant?
    /// Requests leaving ranks handed back during the switch.
    public var migrated = 0

    /// Starts the resize; run the returned actions.
    public static func start(_ plan: Plan, timeouts: Timeouts, now: ContinuousClock.Instant) -> (ResizeMachine, [Action]) {
        var m = ResizeMachine(plan: plan, timeouts: timeouts, now: now)
        let actions: [Action]
        if let drain = timeouts.drain, drain > .zero, !plan.leaving.isEmpty {
            m.deadline = now + drain
            actions = []
        } else {
            actions = m.enter(.launch, now: now)
        }
        return (m, actions)
    }

    private init(plan: Plan, timeouts: Timeouts, now: ContinuousClock.Instant) {
        self.plan = plan
        self.timeouts = timeouts
        self.phase = timeouts.drain.map { $0 > .zero && !plan.leaving.isEmpty } == true ? .drain : .launch
        self.phaseStarted = now
    }

    public var isFinished: Bool { phase == .committed || phase == .rolledBack }

    /// How the running phase is reported (preparing includes the switch).
    private var phaseName: String { phase == .prepare ? "prepare+commit" : phase.rawValue }

    /// The finished phases, then the running one with its seconds so far.
    public func phasesSoFar(now: ContinuousClock.Instant) -> [(String, Double)] {
        guard !isFinished else { return phases }
        return phases + [(phaseName, (now - phaseStarted).seconds)]
    }
    public var joining: [String] { plan.joining }
    public var leaving: [String] { plan.leaving }

    /// Whether `engine` is being launched or registered and has not joined yet.
    public func isJoining(_ engine: String) -> Bool { !committed && plan.joining.contains(engine) }

    public mutating func handle(_ event: Event, now: ContinuousClock.Instant) -> [Action] {
        guard !isFinished else { return [] }
        switch event {
        case .leavingIdle:
            if phase == .drain { return enter(.launch, now: now) }
        case .launched:
            if phase == .launch { return enter(.register, now: now) }
        case .launchFailed(let reason):
            if phase == .launch { return fail(reason, now: now) }
        case .connected(let engine):
            guard plan.joining.contains(engine) else { return [] }
            connected.insert(engine)
            if phase == .register && allJoinersConnected { return enter(.prepare, now: now) }
        case .result(let engine, let ok, let error):
            guard plan.oldMembers.contains(engine), reconfigureSent, results[engine] == nil else { return [] }
            results[engine] = (ok, error)
            var actions: [Action] = []
            if ok && !committed {
                committed = true
                actions.append(.switchGeneration)
            }
            return actions + settle(now: now)
        case .handedBack(let engine):
            guard plan.leaving.contains(engine), reconfigureSent else { return [] }
            handedBack.insert(engine)
            return settle(now: now)
        case .joinerFailed(let reason):
            if [.launch, .register, .prepare].contains(phase) && !committed { return fail(reason, now: now) }
        case .lost(let engine):
            guard plan.union.contains(engine), !lost.contains(engine) else { return [] }
            lost.insert(engine)
            if committed || phase == .rollingBack { return settle(now: now) }
            return fail("engine core \(engine) was lost during the resize", now: now)
        case .deploymentFailed(let reason):
            if !committed && phase != .rollingBack { return fail(reason, now: now) }
        case .tick:
            guard let deadline, now >= deadline else { return [] }
            switch phase {
            case .drain: return enter(.launch, now: now)
            case .launch, .register:
                return fail("timed out after \(timeouts.phase) waiting for \(phase == .launch ? "the joining engine cores to start" : "joining engine cores to connect")", now: now)
            case .prepare:
                if committed { return finish(now: now) }
                return fail("timed out after \(timeouts.prepare) waiting for every rank to prepare and switch", now: now)
            case .rollingBack:
                return finish(now: now)
            case .committed, .rolledBack:
                return []
            }
        }
        return []
    }

    // MARK: Transitions

    private var allJoinersConnected: Bool { plan.joining.allSatisfy { connected.contains($0) } }

    /// Every old member answered or was lost.
    private var allAnswered: Bool { plan.oldMembers.allSatisfy { results[$0] != nil || lost.contains($0) } }

    /// Every leaving rank handed its requests back or was lost (only after a commit).
    private var allHandedBack: Bool { plan.leaving.allSatisfy { handedBack.contains($0) || lost.contains($0) } }

    private mutating func closePhase(now: ContinuousClock.Instant) {
        phases.append((phaseName, (now - phaseStarted).seconds))
        phaseStarted = now
    }

    private mutating func enter(_ next: Phase, now: ContinuousClock.Instant) -> [Action] {
        if phase != next { closePhase(now: now) }
        phase = next
        switch next {
        case .launch:
            deadline = now + timeouts.phase
            let launches = plan.joining.compactMap { id in plan.members.firstIndex(of: id).map { Launch(engine: id, rank: $0) } }
            return [.launch(launches)]
        case .register:
            deadline = now + timeouts.phase
            return allJoinersConnected ? enter(.prepare, now: now) : []
        case .prepare:
            deadline = now + timeouts.prepare
            reconfigureSent = true
            return [.sendReconfigure]
        default:
            return []
        }
    }

    /// After an answer, a hand-back or a loss during prepare or the rollback: finish when
    /// every old member answered (and, after a commit, every leaving rank handed its requests
    /// back); a prepare where every answer is a refusal fails.
    private mutating func settle(now: ContinuousClock.Instant) -> [Action] {
        guard allAnswered else { return [] }
        if committed { return allHandedBack ? finish(now: now) : [] }
        switch phase {
        case .prepare:
            // A rank's own error says more than the others' "aborted".
            let errors = plan.oldMembers.compactMap { results[$0].flatMap { $0.committed ? nil : $0.error } }.filter { !$0.isEmpty }
            return fail(errors.first { $0 != Self.abortedByCoordinator } ?? errors.first ?? "a rank did not commit", now: now)
        case .rollingBack:
            return finish(now: now)
        default:
            return []
        }
    }

    private mutating func fail(_ reason: String, now: ContinuousClock.Instant) -> [Action] {
        failureReason = reason
        guard reconfigureSent else { return finish(now: now) }
        closePhase(now: now)
        phase = .rollingBack
        deadline = now + (lost.isEmpty ? timeouts.phase : timeouts.rollbackAfterLoss)
        var actions: [Action] = [.abort(reason: reason)]
        if allAnswered { actions += finish(now: now) }
        return actions
    }

    private mutating func finish(now: ContinuousClock.Instant) -> [Action] {
        closePhase(now: now)
        deadline = nil
        if committed {
            phase = .committed
            let leavers = plan.leaving
            return (leavers.isEmpty ? [] : [.stop(leavers)]) + [.finished(.committed)]
        }
        phase = .rolledBack
        var reason = failureReason ?? "the resize did not commit"
        let rankError = plan.oldMembers.compactMap { results[$0]?.error }
            .first { !$0.isEmpty && $0 != ResizeMachine.abortedByCoordinator }
        if let rankError, !reason.contains(rankError) { reason += "; the ranks reported: \(rankError)" }
        let joiners = plan.joining
        return [.restoreOldGeneration] + (joiners.isEmpty ? [] : [.stop(joiners)]) + [.finished(.rolledBack(reason: reason))]
    }

    /// What a rank answers when it aborts because it was told to.
    public static let abortedByCoordinator = "aborted by the coordinator"
}
