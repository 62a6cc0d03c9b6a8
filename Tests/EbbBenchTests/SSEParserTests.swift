import Testing
@testable import EbbBench

@Suite struct SSEParserTests {
    static let stream = "data: {\"a\":1}\n\n: keep-alive comment\n\ndata: {\"b\":\"é€\"}\r\n\r\nevent: update\ndata:  two\ndata: lines\n\ndata: [DONE]\n\n"
    static let expected = [
        SSEEvent(data: "{\"a\":1}"),
        SSEEvent(data: "{\"b\":\"é€\"}"),
        SSEEvent(event: "update", data: " two\nlines"),
        SSEEvent(data: "[DONE]"),
    ]

    func parse(_ pieces: [[UInt8]]) throws -> [SSEEvent] {
        var p = SSEParser()
        var events = [SSEEvent]()
        for piece in pieces { events += try p.feed(piece) }
        events += try p.finish()
        return events
    }

    @Test func wholeStream() throws {
        #expect(try parse([Array(Self.stream.utf8)]) == Self.expected)
    }

    @Test func everySingleSplitPoint() throws {
        let bytes = Array(Self.stream.utf8)
        for cut in 0...bytes.count {
            #expect(try parse([Array(bytes[..<cut]), Array(bytes[cut...])]) == Self.expected, "split at \(cut)")
        }
    }

    @Test func byteAtATime() throws {
        #expect(try parse(Array(Self.stream.utf8).map { [$0] }) == Self.expected)
    }

    @Test func randomSplits() throws {
        let bytes = Array(Self.stream.utf8)
        var rng = SplitMix64(seed: 7)
        for _ in 0..<200 {
            var pieces = [[UInt8]]()
            var i = 0
            while i < bytes.count {
                let n = rng.nextInt(in: 0..<9)
                pieces.append(Array(bytes[i..<min(i + n, bytes.count)]))
                i += n
            }
            #expect(try parse(pieces) == Self.expected)
        }
    }

    @Test func eventsArriveAsSoonAsTheirBlankLineDoes() throws {
        var p = SSEParser()
        #expect(try p.feed(Array("data: x\n".utf8)).isEmpty)
        #expect(try p.feed(Array("\nda".utf8)) == [SSEEvent(data: "x")])
        #expect(try p.feed(Array("ta: y\r".utf8)).isEmpty)
        // The LF after a CR that ended the previous piece is not a second (blank) line.
        #expect(try p.feed(Array("\n".utf8)).isEmpty)
        #expect(try p.feed(Array("\r\n".utf8)) == [SSEEvent(data: "y")])
    }

    @Test func lineEndingsLFCRLFAndCR() throws {
        #expect(try parse([Array("data: a\r\rdata: b\r\n\r\ndata: c\n\n".utf8)]) ==
            [SSEEvent(data: "a"), SSEEvent(data: "b"), SSEEvent(data: "c")])
    }

    @Test func unterminatedLastEventIsFlushedByFinish() throws {
        #expect(try parse([Array("data: [DONE]".utf8)]) == [SSEEvent(data: "[DONE]")])
    }

    @Test func blocksWithoutDataAndUnknownFieldsDispatchNothing() throws {
        #expect(try parse([Array("event: ping\n\nid: 3\nretry: 10\n\nfoo\n\n".utf8)]).isEmpty)
        #expect(try parse([Array("data\n\n".utf8)]) == [SSEEvent(data: "")])
    }

    @Test func byteOrderMarkIsSkipped() throws {
        #expect(try parse([[0xEF, 0xBB], [0xBF] + Array("data: z\n\n".utf8)]) == [SSEEvent(data: "z")])
    }

    @Test func oversizedLineIsAnError() {
        var p = SSEParser(maxEventBytes: 16)
        #expect(throws: SSEParser.ParseError.lineTooLong(limit: 16)) {
            _ = try p.feed(Array("data: 0123456789abcdef\n\n".utf8))
        }
    }
}
