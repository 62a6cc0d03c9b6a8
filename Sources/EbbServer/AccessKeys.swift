import EbbCore
import Foundation
import Hummingbird

/// Who may call what. `apiKey` guards the model routes as vLLM's `--api-key` does
/// (`Authorization: Bearer KEY`); `adminKey` guards the routes that change the deployment
/// (resizes), which the user key does not open. Without an admin key those take the user
/// key; without either key everything is open. `/health`, `/metrics`, `/version`,
/// vLLM's `/is_scaling_elastic_ep` and the dashboard's page (not its data) stay open. Keys are compared in constant time.
public struct AccessKeys: Sendable, Equatable {
    public var apiKey: String?
    public var adminKey: String?

    public init(apiKey: String? = nil, adminKey: String? = nil) {
        self.apiKey = apiKey.flatMap { $0.isEmpty ? nil : $0 }
        self.adminKey = adminKey.flatMap { $0.isEmpty ? nil : $0 }
    }

    public enum Scope: Sendable, Equatable {
        case open
        /// The model and the deployment's read-only state.
        case user
        /// Changes to the deployment.
        case admin
    }

    /// The scope of a route.
    public static func scope(method: HTTPRequest.Method, path: String) -> Scope {
        switch (method, path) {
        case (.get, "/health"), (.get, "/metrics"), (.get, "/version"), (.post, "/is_scaling_elastic_ep"), (.get, "/dashboard"):
            return .open
        case (.post, "/scale_elastic_ep"):
            return .admin
        case (.post, _) where path.hasPrefix("/elastic_ep/"):
            return .admin
        default:
            return .user
        }
    }

    /// Why a request with `authorization` (the header's value) may not call `method path`;
    /// nil when it may.
    public func refusal(method: HTTPRequest.Method, path: String, authorization: String?) -> APIError? {
        let presented = authorization.flatMap(Self.bearerToken)
        func matches(_ key: String?) -> Bool {
            guard let key, let presented else { return false }
            return constantTimeEquals(Array(presented.utf8), Array(key.utf8))
        }
        switch Self.scope(method: method, path: path) {
        case .open:
            return nil
        case .user:
            guard let apiKey else { return nil }
            if matches(apiKey) || matches(adminKey) { return nil }
            return Self.unauthorized(presented == nil)
        case .admin:
            guard let required = adminKey ?? apiKey else { return nil }
            if matches(required) { return nil }
            if adminKey != nil && matches(apiKey) {
                return APIError(.forbidden, "this route changes the deployment and needs the admin key (--admin-api-key)",
                                type: "PermissionDeniedError")
            }
            return Self.unauthorized(presented == nil)
        }
    }

    static func unauthorized(_ missing: Bool) -> APIError {
        APIError(.unauthorized, missing ? "missing API key: send Authorization: Bearer <key>" : "incorrect API key",
                 type: "AuthenticationError")
    }

    /// The token of `Bearer <token>` (the scheme is case-insensitive).
    static func bearerToken(_ header: String) -> String? {
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        return String(parts[1]).trimmingCharacters(in: .whitespaces)
    }
}

/// Answers 401/403 before a route runs when `AccessKeys` refuses the request.
struct AccessMiddleware<Context: RequestContext>: RouterMiddleware {
    let keys: AccessKeys

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let refusal = keys.refusal(method: request.method, path: request.uri.path, authorization: request.headers[.authorization]) {
            var response = OpenAIServer.errorResponse(refusal)
            if refusal.status == .unauthorized { response.headers[.wwwAuthenticate] = "Bearer" }
            return response
        }
        return try await next(request, context)
    }
}
