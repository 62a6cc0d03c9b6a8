import EbbCore
import Foundation

/// Faults the tests inject into resizes, from `EBB_FAULT` (set for `ebb serve`; its engine
/// cores inherit it and read it themselves, so nothing fault-related travels in control
/// messages). `scale.<phase>[@g]` fails phase `<phase>` of the resize to generation `g`
/// (of every resize without `@g`); `pause.<phase>=<seconds>[@g]` holds the phase that long
/// before it runs (a test kills a rank meanwhile). Phases: `launch` (the coordinator starting
/// joiners), `register` (a joiner before its hello), `communicator`, `transfer`, `warmup`
/// (each rank's preparation).
public struct FaultInjection: Sendable, Equatable {
    public enum Action: Sendable, Equatable {
        case fail
        case pause(Duration)
    }

    public let phase: String
    public let generation: UInt64?
    public let action: Action

    public init(phase: String, generation: UInt64?, action: Action) {
        self.phase = phase
        self.generation = generation
        self.action = action
    }

    /// Parses a spec; nil for none or one that does not parse.
    public static func parse(_ spec: String?) -> FaultInjection? {
        guard let spec, !spec.isEmpty else { return nil }
        let parts = spec.split(separator: "@", maxSplits: 1).map(String.init)
        let generation = parts.count > 1 ? UInt64(parts[1]) : nil
        if parts.count > 1 && generation == nil { return nil }
        let body = parts[0]
        if body.hasPrefix("scale.") {
            let phase = String(body.dropFirst("scale.".count))
            return phase.isEmpty ? nil : FaultInjection(phase: phase, generation: generation, action: .fail)
        }
        if body.hasPrefix("pause.") {
            let rest = body.dropFirst("pause.".count).split(separator: "=", maxSplits: 1).map(String.init)
            guard rest.count == 2, !rest[0].isEmpty, let seconds = Double(rest[1]), seconds > 0, seconds < 3600 else { return nil }
            return FaultInjection(phase: rest[0], generation: generation, action: .pause(.milliseconds(Int64(seconds * 1000))))
        }
        return nil
    }

    /// The fault of `EBB_FAULT` in this process's environment.
    public static var fromEnvironment: FaultInjection? { parse(ProcessInfo.processInfo.environment["EBB_FAULT"]) }

    /// What to do at `phase` of the resize to `generation`.
    public func action(at phase: String, generation g: UInt64) -> Action? {
        guard phase == self.phase, generation.map({ $0 == g }) ?? true else { return nil }
        return action
    }

    /// Fails or pauses `phase` of generation `g` as injected (on the calling thread).
    public func inject(_ phase: String, generation g: UInt64) throws {
        switch action(at: phase, generation: g) {
        case .fail?: throw EbbError(.internal, "injected fault at scale.\(phase)")
        case .pause(let d)?: Thread.sleep(forTimeInterval: Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18)
        case nil: break
        }
    }
}

extension Optional where Wrapped == FaultInjection {
    func inject(_ phase: String, generation g: UInt64) throws {
        try self?.inject(phase, generation: g)
    }
}
