/// Waves keep the data-parallel ranks stepping together without a busy-wait when idle.
///
/// A wave is a stretch of lockstep steps. It ends when the step-sync all-reduce shows that
/// no rank has work: every rank sees the same sum, so all ranks pause together and report
/// `idle(wave)`. The coordinator starts the next wave (tells every rank `startWave`) when it
/// dispatches the next request. A request that reaches a rank after that rank paused, but
/// was sent before the coordinator learned of the pause, carries the finished wave's
/// number; the rank then asks the coordinator to start the next wave.
///
/// Both sides are plain state machines: events in, actions out.
public struct CoordinatorWaves: Sendable, Equatable {
    /// The current (or last) wave.
    public private(set) var wave: UInt64 = 0
    /// Whether the ranks are known to be paused after `wave`.
    public private(set) var paused = true

    public init() {}

    /// A request is about to be sent. Returns the wave to start first (broadcast it to every
    /// rank before the request), if the ranks are paused.
    public mutating func dispatch() -> UInt64? {
        guard paused else { return nil }
        wave += 1
        paused = false
        return wave
    }

    /// A rank reported that `wave` ended with no work anywhere.
    public mutating func idle(wave w: UInt64) {
        if w == wave { paused = true }
    }

    /// A paused rank holds work that arrived late and asks for wave `w`. Returns the wave
    /// to broadcast, or nil when it has already been started.
    public mutating func wakeRequested(wave w: UInt64) -> UInt64? {
        guard w > wave else { return nil }
        wave = w
        paused = false
        return w
    }
}

/// A rank's side of the waves.
public struct EngineWaves: Sendable, Equatable {
    public private(set) var wave: UInt64 = 0
    public private(set) var paused = true

    public init() {}

    public enum Action: Sendable, Equatable {
        case none
        /// Tell the coordinator that every rank went idle at the end of `wave`.
        case reportIdle(wave: UInt64)
        /// Ask the coordinator to start `wave` (work arrived after the pause).
        case requestWake(wave: UInt64)
    }

    /// The coordinator started wave `w`.
    public mutating func startWave(_ w: UInt64) {
        if w > wave { wave = w }
        if w >= wave { paused = false }
    }

    /// Joins the other ranks of a new generation in wave `w`, running.
    public mutating func adopt(wave w: UInt64) {
        wave = w
        paused = false
    }

    /// A request sent during wave `w` arrived.
    public func requestArrived(sentInWave w: UInt64) -> Action {
        paused && w <= wave ? .requestWake(wave: wave + 1) : .none
    }

    /// The step-sync all-reduce said whether any rank has work.
    public mutating func synced(anyWork: Bool) -> Action {
        guard !anyWork else { return .none }
        paused = true
        return .reportIdle(wave: wave)
    }
}
