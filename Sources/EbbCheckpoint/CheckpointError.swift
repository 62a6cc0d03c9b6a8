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
    /// The tensor's data range does not hold exactly `elements × dtype size` bytes.
    case byteLengthMismatch(file: String, tensor: String, dtype: String, shape: [Int], expectedBytes: Int, foundBytes: Int)
    /// The dtype is a valid safetensors dtype, but not one the requested read supports.
    case unsupportedDType(file: String, tensor: String, dtype: String, supported: [String])
    /// The same tensor name appears in more than one safetensors file of a checkpoint.
    case duplicateTensor(tensor: String, files: [String])
    /// `model.safetensors.index.json` is unreadable or malformed.
    case invalidIndex(file: String, reason: String)

    public var description: String {
        switch self {
        case let .io(file, reason):
            return "\(file): cannot read: \(reason)"
        case let .corruptHeader(file, reason):
            return "\(file): corrupt or truncated safetensors header: \(reason)"
        case let .unknownDType(file, tensor, dtype):
            return "\(file): tensor '\(tensor)' has unknown dtype '\(dtype)' (expected one of \(StorageDType.allCases.map(\.rawValue).joined(separator: ", ")))"
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
        case let .byteLengthMismatch(file, tensor, dtype, shape, expectedBytes, foundBytes):
            return "\(file): tensor '\(tensor)' data is \(foundBytes) bytes, but shape \(shape) of \(dtype) needs \(expectedBytes) bytes"
        case let .unsupportedDType(file, tensor, dtype, supported):
            return "\(file): tensor '\(tensor)' has dtype \(dtype), which cannot be read here (supported: \(supported.joined(separator: ", ")))"
        case let .duplicateTensor(tensor, files):
            return "tensor '\(tensor)' appears in more than one file: \(files.joined(separator: ", "))"
        case let .invalidIndex(file, reason):
            return "\(file): invalid safetensors index: \(reason)"
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
