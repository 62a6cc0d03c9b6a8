import GRPCCore
import SwiftProtobuf

// gRPC message coding for the generated control-plane code, over swift-protobuf. (Ebb's own,
// instead of grpc-swift-protobuf's: depending on that package makes test builds compile
// swift-protobuf's bundled `protoc`, minutes of C++ on every fresh build.)
// `scripts/generate-protos.sh` points the generated code here.

/// Serializes a protobuf message for gRPC; a message that cannot be encoded is an
/// `invalidArgument` RPC error.
public struct ProtobufSerializer<Message: SwiftProtobuf.Message>: GRPCCore.MessageSerializer {
    public init() {}

    public func serialize<Bytes: GRPCContiguousBytes>(_ message: Message) throws -> Bytes {
        do {
            let bytes: [UInt8] = try message.serializedBytes()
            return Bytes(bytes)
        } catch {
            throw RPCError(code: .invalidArgument, message: "cannot serialize \(Message.self)", cause: error)
        }
    }
}

/// Deserializes a protobuf message from gRPC; garbage is an `invalidArgument` RPC error.
public struct ProtobufDeserializer<Message: SwiftProtobuf.Message>: GRPCCore.MessageDeserializer {
    public init() {}

    public func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> Message {
        do {
            let bytes = serializedMessageBytes.withUnsafeBytes { [UInt8]($0) }
            return try Message(serializedBytes: bytes)
        } catch {
            throw RPCError(code: .invalidArgument, message: "cannot deserialize \(Message.self)", cause: error)
        }
    }
}
