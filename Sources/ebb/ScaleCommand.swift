import ArgumentParser
import EbbCore
import Foundation

/// `ebb scale`: asks a running `ebb serve --enable-elastic-ep` to resize (vLLM's
/// `POST /scale_elastic_ep`) and prints its answer.
struct ScaleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scale", abstract: "Resize a running deployment: --to N ranks, or --remove some ranks")

    @Option(help: "Base URL of the server")
    var url: String = "http://127.0.0.1:8000"

    @Option(help: "New number of data-parallel ranks")
    var to: Int?

    @Option(help: "Comma-separated ranks to remove, e.g. 1,3")
    var remove: String?

    @Option(help: "Seconds to let the leaving ranks finish their requests before moving them")
    var drainTimeout: Double?

    @Option(help: "The server's admin key (or its --api-key when it has none); default: $EBB_ADMIN_API_KEY, else $EBB_API_KEY")
    var apiKey: String?

    func run() throws {
        try runReportingErrors {
            var body: [String: JSONValue] = [:]
            switch (to, remove) {
            case (let n?, nil): body["new_data_parallel_size"] = .number(Double(n))
            case (nil, let list?):
                let ranks = try list.split(separator: ",").map { part -> JSONValue in
                    guard let r = Int(part.trimmingCharacters(in: .whitespaces)), r >= 0 else {
                        throw EbbError(.invalidArgument, "'\(part)' is not a rank")
                    }
                    return .number(Double(r))
                }
                body["remove_ranks"] = .array(ranks)
            default: throw EbbError(.invalidArgument, "give exactly one of --to and --remove")
            }
            if let drainTimeout { body["drain_timeout"] = .number(drainTimeout) }
            let env = ProcessInfo.processInfo.environment
            let key = apiKey ?? env["EBB_ADMIN_API_KEY"] ?? env["EBB_API_KEY"]
            let (status, text) = try HTTPPost.send(url: url, path: "/scale_elastic_ep", body: JSONValue.object(body).serialized(),
                                                   bearer: key)
            print(text)
            if status != 200 { throw ExitCode(1) }
        }
    }
}

/// A minimal HTTP/1.1 POST over a TCP socket (the command line needs no HTTP library).
enum HTTPPost {
    static func send(url: String, path: String, body: String, bearer: String? = nil) throws -> (Int, String) {
        guard let u = URL(string: url), u.scheme == "http", let host = u.host else {
            throw EbbError(.invalidArgument, "'\(url)' is not an http:// URL")
        }
        let port = u.port ?? 80
        var hints = addrinfo()
        hints.ai_family = AF_INET
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var info: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &info) == 0, let ai = info else {
            throw EbbError(.io, "cannot resolve \(host)")
        }
        defer { freeaddrinfo(info) }
        let fd = socket(ai.pointee.ai_family, ai.pointee.ai_socktype, ai.pointee.ai_protocol)
        guard fd >= 0 else { throw EbbError(.io, "socket() failed") }
        defer { close(fd) }
        guard connect(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0 else {
            throw EbbError(.io, "cannot connect to \(host):\(port)")
        }
        let payload = Array(body.utf8)
        let authorization = bearer.map { "Authorization: Bearer \($0)\r\n" } ?? ""
        let request = "POST \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nContent-Type: application/json\r\n\(authorization)Content-Length: \(payload.count)\r\nConnection: close\r\n\r\n"
        let bytes = Array(request.utf8) + payload
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw EbbError(.io, "sending the request failed") }
            sent += n
        }
        var response = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            response += buffer[0..<n]
        }
        let text = String(decoding: response, as: UTF8.self)
        guard let statusLine = text.split(separator: "\r\n").first, statusLine.split(separator: " ").count >= 2,
              let status = Int(statusLine.split(separator: " ")[1]) else {
            throw EbbError(.io, "the server sent no HTTP response")
        }
        let bodyText = text.range(of: "\r\n\r\n").map { String(text[$0.upperBound...]) } ?? ""
        return (status, bodyText)
    }
}
