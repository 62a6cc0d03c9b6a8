@testable import EbbCluster
import EbbControl
import EbbCore
import Foundation
import GRPCCore
import Testing

/// The control plane refuses calls without the deployment's secret: an intruder can neither
/// write the rendezvous store nor read it, and what it tried to write is not there.
@Suite("Cluster secret", .timeLimit(.minutes(1)))
struct ClusterSecretTests {
    static let secretText = "the-deployment-secret-0123456789"

    func withStore(_ presented: ClusterSecret?, port: Int, _ body: @escaping @Sendable (ControlPlaneStore) throws -> Void) async throws {
        try await withGRPCClient(transport: try controlClientTransport(ControlAddress(host: "127.0.0.1", port: port)),
                                 interceptors: presented.map { [ClusterSecretHeader($0)] } ?? []) { client in
            let store = ControlPlaneStore(client: ControlCoordinatorService.Client(wrapping: client))
            try await Task.detached { try body(store) }.value
        }
    }

    @Test("the store refuses calls without the secret or with a wrong one")
    func storeNeedsTheSecret() async throws {
        let coordinator = Coordinator(generation: 1, engineIds: ["engine-0"], log: { _ in }, onFailure: { _ in })
        let secret = try ClusterSecret(Self.secretText)
        let wrong = try ClusterSecret("somebody-elses-secret-0123456789")
        try await withLoopbackControlPlane(coordinator, secret: secret) { port in
            for presented in [nil, wrong] {
                try await withStore(presented, port: port) { store in
                    #expect { try store.set("ebb/gen1/intruder", [1, 2, 3]) } throws: { "\($0)".contains("unauthenticated") }
                    #expect { try store.get("ebb/gen1/key", timeout: .milliseconds(200)) } throws: { "\($0)".contains("unauthenticated") }
                }
            }
            try await withStore(secret, port: port) { store in
                try store.set("ebb/gen1/key", [7])
                #expect(try store.get("ebb/gen1/key", timeout: .seconds(2)) == [7])
                #expect(throws: EbbError.self) { try store.get("ebb/gen1/intruder", timeout: .milliseconds(200)) }
            }
            coordinator.shutdown(reason: "test over")
        }
    }

    @Test("secrets: generated ones are long and differ; short or spaced ones are refused")
    func secretRules() throws {
        #expect(ClusterSecret.generate().value.count == 64)
        #expect(ClusterSecret.generate() != ClusterSecret.generate())
        #expect(throws: EbbError.self) { try ClusterSecret("short") }
        #expect(throws: EbbError.self) { try ClusterSecret("has spaces in the middle of it") }
        #expect(try ClusterSecret("  padded-secret-0123456789\n").value == "padded-secret-0123456789")
    }
}
