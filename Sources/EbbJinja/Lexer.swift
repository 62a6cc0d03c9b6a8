import EbbCore

enum TokenKind: Equatable, Sendable {
    case data(String)
    case variableBegin
    case variableEnd
    case blockBegin
    case blockEnd
    case name(String)
    case string(String)
    case integer(Int)
    case float(Double)
    case op(String)
    case eof
}

struct Token: Sendable {
    var kind: TokenKind
    var line: Int
}

func templateError(_ line: Int, _ message: String) -> EbbError {
    EbbError(.template, "template line \(line): \(message)")
}

/// Tokenizes template source exactly like Jinja2's lexer with
/// `trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False`.
struct Lexer {
    private var src: [Unicode.Scalar]
    private var pos = 0
    private var line = 1
    private var lineStarting = true
    private var tokens: [Token] = []
    let trimBlocks: Bool
    let lstripBlocks: Bool

    init(source: String, trimBlocks: Bool = true, lstripBlocks: Bool = true, keepTrailingNewline: Bool = false) {
        // Normalize \r\n and \r to \n, then drop one trailing newline.
        var s: [Unicode.Scalar] = []
        s.reserveCapacity(source.unicodeScalars.count)
        var it = source.unicodeScalars.makeIterator()
        var pending: Unicode.Scalar? = it.next()
        while let c = pending {
            pending = it.next()
            if c == "\r" {
                s.append("\n")
                if pending == "\n" { pending = it.next() }
            } else {
                s.append(c)
            }
        }
        if !keepTrailingNewline, s.last == "\n" { s.removeLast() }
        self.src = s
        self.trimBlocks = trimBlocks
        self.lstripBlocks = lstripBlocks
    }

    private func at(_ i: Int) -> Unicode.Scalar? { i < src.count ? src[i] : nil }

    private func matches(_ s: String, at i: Int) -> Bool {
        var j = i
        for u in s.unicodeScalars {
            guard j < src.count, src[j] == u else { return false }
            j += 1
        }
        return true
    }

    private func string(_ r: Range<Int>) -> String {
        var v = String.UnicodeScalarView()
        v.append(contentsOf: src[r])
        return String(v)
    }

    private func countNewlines(_ r: Range<Int>) -> Int {
        var n = 0
        for i in r where src[i] == "\n" { n += 1 }
        return n
    }

    private mutating func emit(_ k: TokenKind, line l: Int? = nil) {
        tokens.append(Token(kind: k, line: l ?? line))
    }

    /// Consumes whitespace from `i`, returning the new index.
    private func skipSpace(_ i: Int) -> Int {
        var j = i
        while j < src.count, pyIsSpace(src[j]) { j += 1 }
        return j
    }

    /// Emits data text, applying `-` stripping or lstrip_blocks as Jinja does.
    private mutating func emitData(_ r: Range<Int>, sign: Unicode.Scalar?, isVariable: Bool) {
        var end = r.upperBound
        if sign == "-" {
            while end > r.lowerBound, pyIsSpace(src[end - 1]) { end -= 1 }
        } else if sign != "+", lstripBlocks, !isVariable {
            var lpos = r.lowerBound
            var k = r.upperBound
            while k > r.lowerBound {
                if src[k - 1] == "\n" { lpos = k; break }
                k -= 1
            }
            if lpos > r.lowerBound || lineStarting {
                if lpos < r.upperBound, (lpos..<r.upperBound).allSatisfy({ pyIsSpace(src[$0]) }) {
                    end = lpos
                }
            }
        }
        if end > r.lowerBound { emit(.data(string(r.lowerBound..<end))) }
        line += countNewlines(r)
    }

    mutating func tokenize() throws -> [Token] {
        while pos < src.count {
            // Find the next tag start.
            var i = pos
            var found: (Int, Character)? = nil
            while i + 1 < src.count {
                if src[i] == "{" {
                    let n = src[i + 1]
                    if n == "{" { found = (i, "{"); break }
                    if n == "%" { found = (i, "%"); break }
                    if n == "#" { found = (i, "#"); break }
                }
                i += 1
            }
            guard let (tagPos, kind) = found else {
                emitData(pos..<src.count, sign: nil, isVariable: true)
                pos = src.count
                break
            }
            var after = tagPos + 2
            var sign: Unicode.Scalar? = nil
            if let c = at(after), c == "-" || c == "+" { sign = c; after += 1 }

            // {% raw %} ... {% endraw %}
            if kind == "%", let rawEnd = matchRawBegin(at: after) {
                emitData(pos..<tagPos, sign: sign, isVariable: false)
                line += countNewlines(tagPos..<rawEnd)
                lineStarting = rawEnd > 0 && src[rawEnd - 1] == "\n"
                pos = rawEnd
                try lexRawBody()
                continue
            }

            emitData(pos..<tagPos, sign: sign, isVariable: kind == "{")
            pos = after
            switch kind {
            case "#":
                try lexComment()
            case "%":
                emit(.blockBegin)
                try lexTag(isBlock: true)
            default:
                emit(.variableBegin)
                try lexTag(isBlock: false)
            }
        }
        emit(.eof)
        return tokens
    }

    private func matchRawBegin(at start: Int) -> Int? {
        var j = skipSpace(start)
        guard matches("raw", at: j) else { return nil }
        j += 3
        j = skipSpace(j)
        if matches("-%}", at: j) { return skipSpace(j + 3) }
        if matches("%}", at: j) { return j + 2 }
        return nil
    }

    private mutating func lexRawBody() throws {
        let startLine = line
        var i = pos
        while i < src.count {
            if matches("{%", at: i) {
                var j = i + 2
                var sign: Unicode.Scalar? = nil
                if let c = at(j), c == "-" || c == "+" { sign = c; j += 1 }
                j = skipSpace(j)
                if matches("endraw", at: j) {
                    j = skipSpace(j + 6)
                    var end: Int? = nil
                    if matches("+%}", at: j) {
                        end = j + 3
                    } else if matches("-%}", at: j) {
                        end = skipSpace(j + 3)
                    } else if matches("%}", at: j) {
                        end = j + 2
                        if trimBlocks, at(j + 2) == "\n" { end = j + 3 }
                    }
                    if let end {
                        emitData(pos..<i, sign: sign, isVariable: false)
                        line += countNewlines(i..<end)
                        lineStarting = src[end - 1] == "\n"
                        pos = end
                        return
                    }
                }
            }
            i += 1
        }
        throw templateError(startLine, "missing end of raw directive")
    }

    private mutating func lexComment() throws {
        let startLine = line
        var i = pos
        while i < src.count {
            var end: Int? = nil
            if matches("+#}", at: i) {
                end = i + 3
            } else if matches("-#}", at: i) {
                end = skipSpace(i + 3)
            } else if matches("#}", at: i) {
                end = i + 2
                if trimBlocks, at(i + 2) == "\n" { end = i + 3 }
            }
            if let end {
                line += countNewlines(pos..<end)
                lineStarting = src[end - 1] == "\n"
                pos = end
                return
            }
            i += 1
        }
        throw templateError(startLine, "missing end of comment tag")
    }

    private static let operators2: [String] = ["//", "**", "==", "!=", ">=", "<="]
    private static let operators1: Set<Unicode.Scalar> = [
        "+", "-", "/", "*", "%", "~", "[", "]", "(", ")", "{", "}", ">", "<", "=", ".", ":", "|", ",", ";",
    ]

    private mutating func lexTag(isBlock: Bool) throws {
        let tagLine = line
        var balance: [Unicode.Scalar] = []
        while true {
            guard pos < src.count else {
                throw templateError(tagLine, "unexpected end of template (unclosed '\(isBlock ? "{%" : "{{")')")
            }
            // End of tag (only when brackets are balanced).
            if balance.isEmpty {
                var end: Int? = nil
                if isBlock {
                    if matches("+%}", at: pos) {
                        end = pos + 3
                    } else if matches("-%}", at: pos) {
                        end = skipSpace(pos + 3)
                    } else if matches("%}", at: pos) {
                        end = pos + 2
                        if trimBlocks, at(pos + 2) == "\n" { end = pos + 3 }
                    }
                } else {
                    if matches("-}}", at: pos) {
                        end = skipSpace(pos + 3)
                    } else if matches("}}", at: pos) {
                        end = pos + 2
                    }
                }
                if let end {
                    emit(isBlock ? .blockEnd : .variableEnd)
                    line += countNewlines(pos..<end)
                    lineStarting = src[end - 1] == "\n"
                    pos = end
                    return
                }
            }
            let c = src[pos]
            if pyIsSpace(c) {
                let e = skipSpace(pos)
                line += countNewlines(pos..<e)
                pos = e
                continue
            }
            if let (tok, end) = try lexNumber() {
                emit(tok)
                pos = end
                continue
            }
            if c == "_" || c.properties.isXIDStart {
                var e = pos + 1
                while e < src.count, src[e] == "_" || src[e].properties.isXIDContinue { e += 1 }
                emit(.name(string(pos..<e)))
                pos = e
                continue
            }
            if c == "'" || c == "\"" {
                if let (s, end) = try lexString(quote: c) {
                    emit(.string(s))
                    line += countNewlines(pos..<end)
                    pos = end
                    continue
                }
            }
            if let n = at(pos + 1) {
                let two = String(String.UnicodeScalarView([c, n]))
                if Lexer.operators2.contains(two) {
                    emit(.op(two))
                    pos += 2
                    continue
                }
            }
            if Lexer.operators1.contains(c) {
                switch c {
                case "(": balance.append(")")
                case "[": balance.append("]")
                case "{": balance.append("}")
                case ")", "]", "}":
                    guard let expected = balance.popLast() else {
                        throw templateError(line, "unexpected '\(c)'")
                    }
                    if expected != c { throw templateError(line, "unexpected '\(c)', expected '\(expected)'") }
                default: break
                }
                emit(.op(String(c)))
                pos += 1
                continue
            }
            throw templateError(line, "unexpected character \(pyStringRepr(String(c)))")
        }
    }

    private func isDigit(_ i: Int) -> Bool {
        guard let c = at(i) else { return false }
        return c.value >= 0x30 && c.value <= 0x39
    }

    /// `(\d+_)*\d+` from i; returns end or nil.
    private func digitRun(_ i: Int) -> Int? {
        guard isDigit(i) else { return nil }
        var j = i
        while true {
            while isDigit(j) { j += 1 }
            if at(j) == "_", isDigit(j + 1) { j += 1; continue }
            return j
        }
    }

    private func lexNumber() throws -> (TokenKind, Int)? {
        guard isDigit(pos) else { return nil }
        // Float: digits then (.digits)? e[+-]?digits, or .digits; not preceded by '.'.
        if pos == 0 || src[pos - 1] != "." {
            if let intEnd = digitRun(pos) {
                var j = intEnd
                var isFloat = false
                if at(j) == ".", let f = digitRun(j + 1) { j = f; isFloat = true }
                if let e = at(j), e == "e" || e == "E" {
                    var k = j + 1
                    if let s = at(k), s == "+" || s == "-" { k += 1 }
                    if let ee = digitRun(k) { j = ee; isFloat = true }
                }
                if isFloat {
                    let text = string(pos..<j).replacingUnderscores()
                    guard let d = Double(text) else { throw templateError(line, "invalid float literal") }
                    return (.float(d), j)
                }
            }
        }
        // Integer.
        if src[pos] == "0", let p = at(pos + 1) {
            let radix: Int?
            switch p {
            case "b", "B": radix = 2
            case "o", "O": radix = 8
            case "x", "X": radix = 16
            default: radix = nil
            }
            if let radix {
                var j = pos + 2
                var digits = ""
                while let c = at(j) {
                    if c == "_", let n = at(j + 1), Int(String(n), radix: radix) != nil { j += 1; continue }
                    if Int(String(c), radix: radix) != nil { digits.unicodeScalars.append(c); j += 1 } else { break }
                }
                if !digits.isEmpty {
                    guard let v = Int(digits, radix: radix) else { throw templateError(line, "integer literal too large") }
                    return (.integer(v), j)
                }
            }
            // 0(_?0)*
            var j = pos + 1
            while true {
                if at(j) == "0" { j += 1; continue }
                if at(j) == "_", at(j + 1) == "0" { j += 2; continue }
                break
            }
            return (.integer(0), j)
        }
        guard let end = digitRun(pos) else { return nil }
        guard let v = Int(string(pos..<end).replacingUnderscores()) else {
            throw templateError(line, "integer literal too large")
        }
        return (.integer(v), end)
    }

    /// Lexes a quoted string starting at pos; nil if unterminated (Jinja then fails on the quote).
    private func lexString(quote: Unicode.Scalar) throws -> (String, Int)? {
        var j = pos + 1
        var raw: [Unicode.Scalar] = []
        while j < src.count {
            let c = src[j]
            if c == "\\" {
                guard j + 1 < src.count else { return nil }
                raw.append(c)
                raw.append(src[j + 1])
                j += 2
                continue
            }
            if c == quote {
                return (try unescapePython(raw), j + 1)
            }
            raw.append(c)
            j += 1
        }
        return nil
    }

    /// Python `unicode-escape` decoding of a string literal body.
    private func unescapePython(_ s: [Unicode.Scalar]) throws -> String {
        var out = String.UnicodeScalarView()
        var i = 0
        func hex(_ n: Int) throws -> Unicode.Scalar {
            guard i + n <= s.count else { throw templateError(line, "truncated escape in string literal") }
            var v: UInt32 = 0
            for k in 0..<n {
                guard let d = Int(String(s[i + k]), radix: 16) else {
                    throw templateError(line, "truncated escape in string literal")
                }
                v = v * 16 + UInt32(d)
            }
            i += n
            guard let u = Unicode.Scalar(v) else { throw templateError(line, "illegal Unicode character in string literal") }
            return u
        }
        while i < s.count {
            let c = s[i]
            guard c == "\\", i + 1 < s.count else {
                out.append(c)
                i += 1
                continue
            }
            let e = s[i + 1]
            i += 2
            switch e {
            case "\n": break
            case "\\": out.append("\\")
            case "'": out.append("'")
            case "\"": out.append("\"")
            case "a": out.append("\u{07}")
            case "b": out.append("\u{08}")
            case "f": out.append("\u{0C}")
            case "n": out.append("\n")
            case "r": out.append("\r")
            case "t": out.append("\t")
            case "v": out.append("\u{0B}")
            case "x": out.append(try hex(2))
            case "u": out.append(try hex(4))
            case "U": out.append(try hex(8))
            case "0"..."7":
                var v = e.value - 0x30
                var n = 1
                while n < 3, i < s.count, s[i].value >= 0x30, s[i].value <= 0x37 {
                    v = v * 8 + (s[i].value - 0x30)
                    i += 1
                    n += 1
                }
                out.append(Unicode.Scalar(v) ?? "\u{FFFD}")
            case "N":
                throw templateError(line, "\\N{...} escapes are not supported")
            default:
                out.append("\\")
                out.append(e)
            }
        }
        return String(out)
    }
}

extension String {
    fileprivate func replacingUnderscores() -> String {
        String(String.UnicodeScalarView(unicodeScalars.filter { $0 != "_" }))
    }
}
