import EbbCore
import Foundation
import GRPCCore

/// The secret only a deployment's own processes know. `ebb serve` makes one per deployment
/// (or reads it from `--cluster-secret-file`) and hands it to its engine cores in the
/// environment (`EBB_CLUSTER_SECRET`), never on a command line; every call to the control
/// plane — the engine streams and the rendezvous store alike — carries it in the
/// `ebb-cluster-secret` metadata, and the coordinator refuses a call without it before any
/// service code runs.
///
/// Why a shared secret in metadata rather than TLS: the control plane runs between the
/// processes of one deployment on a private network; the secret keeps strangers (another
/// tenant's process, a port scanner) from joining as an engine core, reading request
/// streams or writing the rendezvous store, with nothing to provision. It does not hide the
/// traffic from someone who can read the network: on an untrusted network, run the
/// deployment inside a private one (a VPC, a WireGuard mesh, Kubernetes network policies).
public struct ClusterSecret: Sendable, Equatable {
    public let value: String

    public static let environmentVariable = "EBB_CLUSTER_SECRET"
    static let metadataKey = "ebb-cluster-secret"
    /// Shorter secrets are refused (they could be guessed).
    public static let minimumLength = 16

    public init(_ value: String) throws {
        let v = value.trimmingCharacters(in: .whitespacesAndNewlines)
        guard v.count >= Self.minimumLength, v.allSatisfy({ $0.isASCII && !$0.isWhitespace }) else {
            throw EbbError(.invalidArgument, "a cluster secret must be at least \(Self.minimumLength) printable ASCII characters without spaces")
        }
        self.value = v
    }

    /// 32 random bytes from the system's generator, as hex.
    public static func generate() -> ClusterSecret {
        var rng = SystemRandomNumberGenerator()
        let hex = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &rng)) }.joined()
        return ClusterSecret(checked: hex)
    }

    private init(checked: String) { value = checked }

    /// The secret in `path` (surrounding whitespace ignored).
    public static func read(file path: String) throws -> ClusterSecret {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw EbbError(.invalidArgument, "cannot read the cluster secret file \(path)")
        }
        return try ClusterSecret(text)
    }

    /// `EBB_CLUSTER_SECRET` of this process (nil when unset).
    public static func fromEnvironment() throws -> ClusterSecret? {
        guard let v = ProcessInfo.processInfo.environment[environmentVariable], !v.isEmpty else { return nil }
        return try ClusterSecret(v)
    }

    func matches(_ presented: String) -> Bool {
        constantTimeEquals(Array(presented.utf8), Array(value.utf8))
    }
}

/// The coordinator's check: a call without the deployment's secret is refused
/// (`unauthenticated`) before it reaches the service.
public struct ClusterSecretCheck: ServerInterceptor {
    let secret: ClusterSecret

    public init(_ secret: ClusterSecret) { self.secret = secret }

    public func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>, context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        let presented = request.metadata[stringValues: ClusterSecret.metadataKey].first { _ in true }
        guard let presented, secret.matches(presented) else {
            throw RPCError(code: .unauthenticated,
                           message: presented == nil ? "this control plane needs the deployment's cluster secret"
                                                     : "wrong cluster secret")
        }
        return try await next(request, context)
    }
}

/// An engine core's side: every call carries the secret.
public struct ClusterSecretHeader: ClientInterceptor {
    let secret: ClusterSecret

    public init(_ secret: ClusterSecret) { self.secret = secret }

    public func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingClientRequest<Input>, context: ClientContext,
        next: (StreamingClientRequest<Input>, ClientContext) async throws -> StreamingClientResponse<Output>
    ) async throws -> StreamingClientResponse<Output> {
        var request = request
        request.metadata.replaceOrAddString(secret.value, forKey: ClusterSecret.metadataKey)
        return try await next(request, context)
    }
}
