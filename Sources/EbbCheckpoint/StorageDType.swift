import EbbTensor

/// Element types a safetensors file may declare. Every one can be opened and its raw
/// bytes read; `Checkpoint.floats` converts only F32, BF16 and F16 and `Checkpoint.ints`
/// only I32 and I64.
public enum StorageDType: String, Sendable, Equatable, CaseIterable {
    case f64 = "F64"
    case f32 = "F32"
    case bf16 = "BF16"
    case f16 = "F16"
    case f8e4m3 = "F8_E4M3"
    case f8e5m2 = "F8_E5M2"
    case i64 = "I64"
    case i32 = "I32"
    case i16 = "I16"
    case i8 = "I8"
    case u64 = "U64"
    case u32 = "U32"
    case u16 = "U16"
    case u8 = "U8"
    case bool = "BOOL"

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .f64, .i64, .u64: return 8
        case .f32, .i32, .u32: return 4
        case .bf16, .f16, .i16, .u16: return 2
        case .f8e4m3, .f8e5m2, .i8, .u8, .bool: return 1
        }
    }

    /// The compute dtype this storage type maps to without conversion, if any.
    public var tensorDType: DType? {
        switch self {
        case .f32: return .f32
        case .bf16: return .bf16
        case .f16: return .f16
        case .i32: return .i32
        default: return nil
        }
    }

    /// The storage dtype for a compute dtype.
    public init(_ dtype: DType) {
        switch dtype {
        case .f32: self = .f32
        case .bf16: self = .bf16
        case .f16: self = .f16
        case .i32: self = .i32
        }
    }

    /// Dtypes `floats` converts to f32 (exactly).
    public static let floatReadable: [StorageDType] = [.f32, .bf16, .f16]
    /// Dtypes `ints` converts to Int.
    public static let intReadable: [StorageDType] = [.i32, .i64]
}

/// One tensor of a safetensors file: where its bytes are and what they mean.
public struct TensorEntry: Sendable, Equatable {
    public let name: String
    public let dtype: StorageDType
    public let shape: [Int]
    /// Absolute byte range in the file (header included).
    public let byteRange: Range<Int>
    /// The file's path, for messages.
    public let file: String

    public init(name: String, dtype: StorageDType, shape: [Int], byteRange: Range<Int>, file: String) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.byteRange = byteRange
        self.file = file
    }

    /// Product of the dims (1 for a scalar). Validated not to overflow when the file was opened.
    public var elementCount: Int { shape.reduce(1, &*) }
    public var byteCount: Int { byteRange.count }
}
