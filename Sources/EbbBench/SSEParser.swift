/// One server-sent event: the joined `data:` lines of one block, and its `event:` name.
public struct SSEEvent: Equatable, Sendable {
    public var event: String?
    public var data: String

    public init(event: String? = nil, data: String) {
        self.event = event
        self.data = data
    }
}

/// An incremental parser of a `text/event-stream` body (WHATWG HTML, "server-sent
/// events"): feed it the body's bytes in whatever pieces they arrive in — split mid-line,
/// mid-field name, between CR and LF, mid-UTF-8 sequence — and it returns each event as
/// soon as the blank line that ends it has arrived.
///
/// Lines end with LF, CRLF or CR. Lines that start with `:` are comments. `data:` lines of
/// one block are joined with `\n`; one space after the colon is dropped. A block without a
/// `data:` field dispatches nothing. Unlike the spec, `finish()` also dispatches a last
/// block that the stream ended without a blank line after (servers do that).
public struct SSEParser: Sendable {
    public enum ParseError: Error, Equatable, Sendable, CustomStringConvertible {
        case lineTooLong(limit: Int)
        public var description: String {
            switch self {
            case .lineTooLong(let limit): return "server-sent event larger than \(limit) bytes"
            }
        }
    }

    /// The most bytes one line, or one event's data, may hold.
    public let maxEventBytes: Int
    private var line: [UInt8] = []
    private var data: [UInt8] = []
    private var hasData = false
    private var eventName: String?
    private var afterCR = false
    private var atStart = true

    public init(maxEventBytes: Int = 16 << 20) {
        self.maxEventBytes = maxEventBytes
    }

    /// Consumes `bytes`; returns the events completed by them, in order.
    public mutating func feed<Bytes: Sequence>(_ bytes: Bytes) throws(ParseError) -> [SSEEvent] where Bytes.Element == UInt8 {
        var events = [SSEEvent]()
        for byte in bytes {
            if afterCR {
                afterCR = false
                if byte == 0x0A { continue }  // the LF of a CRLF that was split after the CR
            }
            switch byte {
            case 0x0A:
                if let e = try endLine() { events.append(e) }
            case 0x0D:
                afterCR = true
                if let e = try endLine() { events.append(e) }
            default:
                guard line.count < maxEventBytes else { throw .lineTooLong(limit: maxEventBytes) }
                line.append(byte)
            }
        }
        return events
    }

    /// The end of the stream: a last unterminated line counts as a line, and a block still
    /// open is dispatched.
    public mutating func finish() throws(ParseError) -> [SSEEvent] {
        var events = [SSEEvent]()
        if !line.isEmpty, let e = try endLine() { events.append(e) }
        if let e = dispatch() { events.append(e) }
        afterCR = false
        atStart = true
        return events
    }

    private mutating func endLine() throws(ParseError) -> SSEEvent? {
        defer { line.removeAll(keepingCapacity: true) }
        if atStart {
            atStart = false
            if line.starts(with: [0xEF, 0xBB, 0xBF]) { line.removeFirst(3) }  // a UTF-8 BOM
        }
        if line.isEmpty { return dispatch() }
        if line[0] == UInt8(ascii: ":") { return nil }
        let field: ArraySlice<UInt8>
        var value: ArraySlice<UInt8>
        if let colon = line.firstIndex(of: UInt8(ascii: ":")) {
            field = line[..<colon]
            value = line[(colon + 1)...]
            if value.first == UInt8(ascii: " ") { value = value.dropFirst() }
        } else {
            field = line[...]
            value = []
        }
        if field.elementsEqual("data".utf8) {
            if hasData { data.append(0x0A) }
            guard data.count + value.count <= maxEventBytes else { throw .lineTooLong(limit: maxEventBytes) }
            data.append(contentsOf: value)
            hasData = true
        } else if field.elementsEqual("event".utf8) {
            eventName = String(decoding: value, as: UTF8.self)
        }
        // `id:`, `retry:` and unknown fields do not matter to a benchmark.
        return nil
    }

    private mutating func dispatch() -> SSEEvent? {
        defer {
            data.removeAll(keepingCapacity: true)
            hasData = false
            eventName = nil
        }
        guard hasData else { return nil }
        return SSEEvent(event: eventName, data: String(decoding: data, as: UTF8.self))
    }
}
