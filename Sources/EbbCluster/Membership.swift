import EbbControl
import EbbCore
import EbbEngine
import Foundation

/// Who serves: the serving generation and its members in rank order, every engine the
/// coordinator knows (members, joiners, leavers, lost ones) with what each last said, and
/// the generation numbers handed out. A plain value: the coordinator owns it under its
/// lock, the resize and recovery machines decide its changes.
struct Membership {
    /// What the coordinator knows of one engine core.
    struct Engine {
        var connected = false
        var ready: Ebb_Control_V1_Ready?
        var outbound: AsyncStream<ControlCoordinatorMessage>.Continuation?
        var load = EngineStats()
        var lastSeen: ContinuousClock.Instant?
        /// New requests may go here (false while leaving, or before joining completes).
        var accepting = true
        /// Expected to disconnect (it left, it was lost, or the resize that launched it
        /// rolled back).
        var released = false
        var pid: UInt32?
    }

    private(set) var generation: UInt64
    /// The generation before the current one (its late messages are still accepted).
    private(set) var previousGeneration: UInt64 = 0
    /// The highest generation a resize or recovery attempted: a rolled-back attempt's number
    /// is never reused (its rendezvous keys are stale).
    private(set) var lastAttemptedGeneration: UInt64 = 0
    /// Engine ids of the serving generation, in rank order.
    private(set) var members: [String]
    var engines: [String: Engine] = [:]
    private var nextEngineNumber: Int

    init(generation: UInt64, engineIds: [String]) {
        self.generation = generation
        self.members = engineIds
        self.nextEngineNumber = engineIds.count
        for id in engineIds { engines[id] = Engine() }
    }

    var allReady: Bool { members.allSatisfy { engines[$0]?.ready != nil } }

    /// The members' ready reports (nil for one not ready yet).
    var readyReports: [Ebb_Control_V1_Ready?] { members.map { engines[$0]?.ready } }

    /// `engine`'s rank in the serving generation, or its id when it has none (for messages).
    func label(_ engine: String) -> String { members.firstIndex(of: engine).map(String.init) ?? engine }

    /// Generations a message may carry: the current one, the one being built, the last one.
    func accepts(_ g: UInt64, building: ResizeMachine.Plan?) -> Bool {
        g == generation || g == previousGeneration || g == building?.generation
    }

    /// The rank `engine` has in generation `g` (nil if none).
    func rank(of engine: String, generation g: UInt64, building: ResizeMachine.Plan?) -> Int? {
        if g == generation { return members.firstIndex(of: engine) }
        if let plan = building, g == plan.generation { return plan.members.firstIndex(of: engine) }
        return nil
    }

    /// Admits an engine's hello to the generation it names (the serving one or the one being
    /// built): returns that generation's size, or why it is refused.
    mutating func admit(_ hello: Ebb_Control_V1_Hello, building: ResizeMachine.Plan?,
                        outbound: AsyncStream<ControlCoordinatorMessage>.Continuation,
                        now: ContinuousClock.Instant) -> Result<Int, EbbError> {
        let list: [String]
        if hello.generation == generation {
            list = members
        } else if let plan = building, hello.generation == plan.generation {
            list = plan.members
        } else {
            return .failure(EbbError(.invalidArgument, "generation \(hello.generation) is not the current generation \(generation)"))
        }
        let r = Int(hello.rank)
        guard r < list.count else {
            return .failure(EbbError(.invalidArgument, "rank \(hello.rank) is outside 0..<\(list.count)"))
        }
        guard hello.engineID == list[r] else {
            return .failure(EbbError(.invalidArgument, "rank \(r) belongs to engine '\(list[r])', not '\(hello.engineID)'"))
        }
        guard let slot = engines[hello.engineID], !slot.connected, !slot.released else {
            return .failure(EbbError(.invalidArgument, "rank \(r) is already connected"))
        }
        engines[hello.engineID]?.connected = true
        engines[hello.engineID]?.pid = hello.pid
        engines[hello.engineID]?.outbound = outbound
        engines[hello.engineID]?.lastSeen = now
        return .success(list.count)
    }

    /// Ids for `count` new engines.
    mutating func newEngineIds(_ count: Int) -> [String] {
        (0..<count).map { _ in
            defer { nextEngineNumber += 1 }
            return "engine-\(nextEngineNumber)"
        }
    }

    /// A new generation number for a resize.
    mutating func claimGeneration() -> UInt64 {
        lastAttemptedGeneration = max(lastAttemptedGeneration, generation) + 1
        return lastAttemptedGeneration
    }

    /// A generation number a recovery attempted.
    mutating func noteAttempted(_ g: UInt64) { lastAttemptedGeneration = max(lastAttemptedGeneration, g) }

    /// The highest generation number in use.
    var newestGeneration: UInt64 { max(generation, lastAttemptedGeneration) }

    /// `members` serve now, at generation `g` (nil: the same generation, smaller).
    mutating func switchTo(_ g: UInt64?, members next: [String]) {
        if let g {
            previousGeneration = generation
            generation = g
        }
        members = next
    }

    /// A ready member that has sent nothing for longer than `timeout` (lost ones aside).
    func silentMember(now: ContinuousClock.Instant, timeout: Duration, lost: (String) -> Bool) -> String? {
        members.first { id in
            guard let e = engines[id], e.ready != nil, !e.released, let seen = e.lastSeen, !lost(id) else { return false }
            return now - seen > timeout
        }
    }

    /// The smallest limits the members report (nil before any is ready).
    var limits: (maxModelLen: Int, vocabSize: Int)? {
        let ready = members.compactMap { engines[$0]?.ready }
        guard let len = ready.map({ Int($0.maxModelLen) }).min(), let vocab = ready.map({ Int($0.vocabSize) }).min() else { return nil }
        return (len, vocab)
    }

    /// Expert slots per rank and experts, as the first ready member reports them.
    var expertShape: (slotsPerRank: Int, numExperts: Int) {
        let first = members.lazy.compactMap { engines[$0]?.ready }.first
        return (Int(first?.slotsPerRank ?? 0), Int(first?.numExperts ?? 0))
    }

    /// Whether `engine` can take new requests now.
    func accepting(_ engine: String) -> Bool {
        guard let e = engines[engine] else { return false }
        return e.ready != nil && e.outbound != nil && e.accepting
    }

    /// To every member of the serving generation.
    func broadcast(_ kind: ControlCoordinatorMessage.OneOf_Kind) {
        var m = ControlCoordinatorMessage()
        m.kind = kind
        for id in members { engines[id]?.outbound?.yield(m) }
    }

    /// To every connected engine (members, joiners, leavers).
    func broadcastAll(_ kind: ControlCoordinatorMessage.OneOf_Kind) {
        var m = ControlCoordinatorMessage()
        m.kind = kind
        for e in engines.values { e.outbound?.yield(m) }
    }

    func send(_ kind: ControlCoordinatorMessage.OneOf_Kind, to engine: String) {
        var m = ControlCoordinatorMessage()
        m.kind = kind
        engines[engine]?.outbound?.yield(m)
    }
}
