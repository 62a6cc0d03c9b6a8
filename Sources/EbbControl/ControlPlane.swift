import EbbCore
import GRPCCore
import GRPCNIOTransportHTTP2

/// Names of the generated control-plane types, shorter to write.
public typealias ControlEngineMessage = Ebb_Control_V1_EngineMessage
public typealias ControlCoordinatorMessage = Ebb_Control_V1_CoordinatorMessage
public typealias ControlCoordinatorService = Ebb_Control_V1_Coordinator

/// Where an engine core finds its coordinator: "HOST:PORT".
public struct ControlAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public init(parsing text: String) throws {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
              (1...65535).contains(port), colon > text.startIndex else {
            throw EbbError(.invalidArgument, "'\(text)' is not a coordinator address (HOST:PORT)")
        }
        self.host = String(text[..<colon])
        self.port = port
    }

    public var description: String { "\(host):\(port)" }
}

/// A plaintext HTTP/2 gRPC client transport to `address` (the control plane stays on a
/// trusted network: loopback, or the cluster's private network).
public func controlClientTransport(_ address: ControlAddress) throws -> HTTP2ClientTransport.Posix {
    try HTTP2ClientTransport.Posix(target: .ipv4(address: address.host, port: address.port),
                                   transportSecurity: .plaintext)
}

/// A plaintext HTTP/2 gRPC server transport on `host:port` (port 0 picks a free one).
public func controlServerTransport(host: String, port: Int) -> HTTP2ServerTransport.Posix {
    HTTP2ServerTransport.Posix(address: .ipv4(host: host, port: port), transportSecurity: .plaintext)
}
