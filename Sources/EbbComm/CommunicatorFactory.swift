import EbbCore
import Foundation

/// Forms a rank's host groups — the step vote, placements, weight requests, the expert
/// exchange of CPU ranks — so that cluster and engine code never name a transport: Gloo
/// between processes, the in-process communicator for ranks that are threads of one test.
/// (A GPU rank's device groups are NCCL, chosen from its backend: see `DataPlane`.)
public protocol CommunicatorFactory: Sendable {
    /// Group `name` of `generation` over `members` (every member asks for it with the same
    /// name and list), as rank `rank`; returns once every member joined, or throws after
    /// `connectTimeout`; its operations are bounded by `timeout`. The empty name is the
    /// generation's serving group.
    func form(_ name: String, rank: Int, members: [String], generation: UInt64, timeout: Duration,
              connectTimeout: Duration) throws -> any Communicator
}

extension CommunicatorFactory {
    /// A group whose joining and operations share one timeout.
    public func form(_ name: String, rank: Int, members: [String], generation: UInt64, timeout: Duration) throws -> any Communicator {
        try form(name, rank: rank, members: members, generation: generation, timeout: timeout, connectTimeout: timeout)
    }
}

/// Gloo groups that meet through a rendezvous store (the coordinator's, over the control plane).
public struct GlooGroups: CommunicatorFactory {
    public let store: any KeyValueStore
    /// The address this rank's Gloo connections listen on: `EBB_GLOO_HOSTNAME` (set by the
    /// Ray launcher to the node's address, so peers on other hosts reach it), else loopback.
    public let transport: GlooTransport

    public init(store: any KeyValueStore, transport: GlooTransport = .fromEnvironment) {
        self.store = store
        self.transport = transport
    }

    public func form(_ name: String, rank: Int, members: [String], generation: UInt64, timeout: Duration,
                     connectTimeout: Duration) throws -> any Communicator {
        try GlooCommunicator(rank: rank, size: members.count, generation: generation, members: members, store: store,
                             storePrefix: name.isEmpty ? "ebb/gen\(generation)" : "ebb/gen\(generation)/\(name)",
                             transport: transport, timeout: timeout, connectTimeout: connectTimeout)
    }
}

extension GlooTransport {
    /// `EBB_GLOO_HOSTNAME` when set, else loopback.
    public static var fromEnvironment: GlooTransport {
        let host = ProcessInfo.processInfo.environment["EBB_GLOO_HOSTNAME"].flatMap { $0.isEmpty ? nil : $0 }
        return host.map { GlooTransport(hostname: $0) } ?? .loopback
    }
}

/// In-process groups for ranks that are threads of one process (tests): the first rank to
/// ask for a group creates its hub, the others join it. `owned(by:)` hands a rank a view
/// that remembers what it formed, so `kill` can close it all as a killed process's sockets
/// close: peers blocked in a collective with it fail at once. A killed rank never joins a
/// group that names it (its owner id in `members`): its peers there fail at once too, as
/// the coordinator's abandoned rendezvous releases them between processes.
public final class InProcessGroups: CommunicatorFactory, @unchecked Sendable {
    private let lock = NSLock()
    private var hubs: [String: InProcessHub] = [:]
    private var formed: [String: [any Communicator]] = [:]
    private var killed: Set<String> = []

    public init() {}

    /// (Joining a hub does not wait, so `connectTimeout` plays no part.)
    public func form(_ name: String, rank: Int, members: [String], generation: UInt64, timeout: Duration,
                     connectTimeout: Duration) throws -> any Communicator {
        try form(name, rank: rank, members: members, generation: generation, timeout: timeout, owner: nil)
    }

    /// The factory one rank uses.
    public func owned(by owner: String) -> any CommunicatorFactory { Owned(groups: self, owner: owner) }

    /// Closes every group `owner` formed; it forms no more.
    public func kill(_ owner: String) {
        let groups: [any Communicator] = lock.withLock {
            killed.insert(owner)
            var mine = formed.removeValue(forKey: owner) ?? []
            for hub in hubs.values {
                if let r = hub.members.firstIndex(of: owner), let c = try? hub.communicator(rank: r) { mine.append(c) }
            }
            return mine
        }
        for g in groups { g.close() }
    }

    private func form(_ name: String, rank: Int, members: [String], generation: UInt64, timeout: Duration,
                      owner: String?) throws -> any Communicator {
        let key = "\(generation)/\(name)/\(members.joined(separator: ","))"
        return try lock.withLock {
            if let owner, killed.contains(owner) { throw EbbError(.io, "in-process groups: \(owner) was killed") }
            let hub: InProcessHub
            if let h = hubs[key] {
                hub = h
            } else {
                hub = try InProcessHub(size: members.count, generation: generation, members: members, timeout: timeout)
                hubs[key] = hub
                for (r, m) in members.enumerated() where killed.contains(m) { try hub.communicator(rank: r).close() }
            }
            let c = try hub.communicator(rank: rank)
            if let owner { formed[owner, default: []].append(c) }
            return c
        }
    }

    private struct Owned: CommunicatorFactory {
        let groups: InProcessGroups
        let owner: String
        func form(_ name: String, rank: Int, members: [String], generation: UInt64, timeout: Duration,
                  connectTimeout: Duration) throws -> any Communicator {
            try groups.form(name, rank: rank, members: members, generation: generation, timeout: timeout, owner: owner)
        }
    }
}
