import EbbCore
import HTTPTypes

/// An error answered in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.
public struct APIError: Error, Sendable, Equatable {
    public var status: HTTPResponse.Status
    public var message: String
    public var type: String
    public var param: String?

    public init(_ status: HTTPResponse.Status, _ message: String, type: String? = nil, param: String? = nil) {
        self.status = status
        self.message = message
        self.type = type ?? (status.code == 404 ? "NotFoundError" : status.code >= 500 ? "InternalServerError" : "BadRequestError")
        self.param = param
    }

    public static func badRequest(_ message: String, param: String? = nil) -> APIError {
        APIError(.badRequest, message, param: param)
    }

    /// Maps engine errors: invalid input → 400, nothing serving → 503, anything else → 500.
    public static func from(_ error: any Error) -> APIError {
        switch error {
        case let e as APIError: return e
        case let e as EbbError:
            switch e.code {
            case .invalidArgument, .template, .tokenizer: return .badRequest(e.message)
            case .resourceExhausted: return APIError(.badRequest, e.message)
            case .unavailable: return APIError(.serviceUnavailable, e.message, type: "ServiceUnavailableError")
            default: return APIError(.internalServerError, e.message)
            }
        default: return APIError(.internalServerError, "\(error)")
        }
    }

    public var json: JSONValue {
        let body = ErrorBody(error: .init(message: message, type: type, param: param, code: Int(status.code)))
        return (try? JSONValueEncoder.encode(body)) ?? .null
    }
}
