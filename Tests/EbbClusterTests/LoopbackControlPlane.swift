@testable import EbbCluster
import EbbControl
import EbbCore
import GRPCCore

/// Serves a coordinator's control plane on a loopback port for the length of `body`, which
/// gets the port; the server stops when `body` returns or throws.
func withLoopbackControlPlane(_ coordinator: Coordinator, secret: ClusterSecret? = nil,
                              _ body: @Sendable (Int) async throws -> Void) async throws {
    let transport = controlServerTransport(host: "127.0.0.1", port: 0)
    let server = GRPCServer(transport: transport, services: [ControlPlaneService(coordinator: coordinator)],
                            interceptors: secret.map { [ClusterSecretCheck($0)] } ?? [])
    try await withThrowingDiscardingTaskGroup { group in
        group.addTask { try await server.serve() }
        defer { server.beginGracefulShutdown() }
        let address = try await transport.listeningAddress
        guard let port = address.ipv4?.port else { throw EbbError(.io, "the control plane has no IPv4 port") }
        try await body(port)
    }
}
