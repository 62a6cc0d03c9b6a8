import EbbCore

/// What can be wrong with a checkpoint or its config. Every case names the file and, where
/// there is one, the tensor or key, and says what was expected and what was found.
public enum CheckpointError: Error, Equatable, Sendable, CustomStringConvertible {
    case io(file: String, reason: String)
    case corruptHeader(file: String, reason: String)
    case unknownDType(file: String, tensor: String, dtype: String)
    case offsetsOutOfRange(file: String, tensor: String, detail: String)
    case missingTensor(file: String, tensor: String)
    case unexpectedTensor(file: String, tensor: String)
    case shapeMismatch(file: String, tensor: String, expected: [Int], found: [Int])
    case missingConfigKey(file: String, key: String)
    case invalidConfig(file: String, key: String, reason: String)
    case unsupportedArchitecture(file: String, architecture: String, supported: [String])

    public var description: String {
        switch self {
        case let .io(file, reason):
            return "\(file): cannot read: \(reason)"
        case let .corruptHeader(file, reason):
            return "\(file): corrupt or truncated safetensors header: \(reason)"
        case let .unknownDType(file, tensor, dtype):
            return "\(file): tensor '\(tensor)' has unknown dtype '\(dtype)' (expected F32, BF16, F16, I32 or I64)"
        case let .offsetsOutOfRange(file, tensor, detail):
            return "\(file): tensor '\(tensor)' data offsets are outside the file: \(detail)"
        case let .missingTensor(file, tensor):
            return "\(file): missing tensor '\(tensor)'"
        case let .unexpectedTensor(file, tensor):
            return "\(file): unexpected tensor '\(tensor)' (not used by this architecture)"
        case let .shapeMismatch(file, tensor, expected, found):
            return "\(file): tensor '\(tensor)' has shape \(found), expected \(expected)"
        case let .missingConfigKey(file, key):
            return "\(file): missing config key '\(key)'"
        case let .invalidConfig(file, key, reason):
            return "\(file): invalid value for '\(key)': \(reason)"
        case let .unsupportedArchitecture(file, architecture, supported):
            return "\(file): unsupported architecture '\(architecture)' (supported: \(supported.joined(separator: ", ")))"
        }
    }

    public var ebbError: EbbError {
        switch self {
        case .missingConfigKey: return EbbError(.missingConfigKey, description)
        case .invalidConfig: return EbbError(.invalidConfig, description)
        case .unsupportedArchitecture: return EbbError(.unsupportedArchitecture, description)
        case .io: return EbbError(.io, description)
        default: return EbbError(.checkpoint, description)
        }
    }
}
