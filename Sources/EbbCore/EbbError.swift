/// An error a user can act on: a stable code and a message that says what was wrong.
///
/// Every layer of Ebb throws values of this type (or of a more specific error type that
/// converts to it) instead of trapping; input never crashes a process.
public struct EbbError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable, Equatable {
        case invalidArgument
        case invalidConfig
        case missingConfigKey
        case unsupportedArchitecture
        case checkpoint
        case tokenizer
        case template
        case io
        case unsupported
        case resourceExhausted
        /// Nothing can serve the request now (every rank is lost); try again later (503).
        case unavailable
        case `internal`
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }
}
