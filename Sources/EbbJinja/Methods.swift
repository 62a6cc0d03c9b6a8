import EbbCore

extension Renderer {
    func callGlobal(_ name: String, _ pos: [Value], _ kw: [(String, Value)], _ line: Int) throws -> Value {
        switch name {
        case "raise_exception":
            let msg = pos.first?.str ?? kw.first?.1.str ?? ""
            throw EbbError(.template, msg)
        case "range":
            guard !pos.isEmpty, pos.count <= 3 else { throw error(line, "range expected 1 to 3 arguments") }
            let ints = try pos.map { v -> Int in
                guard let i = indexValue(v) else {
                    if case .undefined(let m) = v { throw error(line, m) }
                    throw error(line, "'\(v.typeName)' object cannot be interpreted as an integer")
                }
                return i
            }
            let (start, stop, step) =
                ints.count == 1 ? (0, ints[0], 1) : (ints[0], ints[1], ints.count == 3 ? ints[2] : 1)
            if step == 0 { throw error(line, "range() arg 3 must not be zero") }
            var out: [Value] = []
            var i = start
            while step > 0 ? i < stop : i > stop {
                out.append(.int(i))
                if out.count > 100_000 {
                    throw EbbError(.resourceExhausted, "template line \(line): range too big (limit 100000 items)")
                }
                let (n, o) = i.addingReportingOverflow(step)
                if o { break }
                i = n
            }
            return .list(out)
        case "namespace":
            var d = VDict()
            if let first = pos.first {
                guard case .dict(let src) = first else { throw error(line, "namespace() positional argument must be a mapping") }
                d = src
            }
            for (k, v) in kw { d[k] = v }
            namespaces.append(d)
            if namespaces.count > limits.maxIterations { throw error(line, "too many namespaces") }
            return .namespace(namespaces.count - 1)
        case "dict":
            var d = VDict()
            if let first = pos.first {
                guard case .dict(let src) = first else { throw error(line, "dict() positional argument must be a mapping") }
                d = src
            }
            for (k, v) in kw { d[k] = v }
            return .dict(d)
        case "strftime_now":
            guard let f = pos.first else { throw error(line, "strftime_now needs a format") }
            return .string(strftimeNow(try requireString(f, "format", line)))
        default:
            throw error(line, "'\(name)' is undefined")
        }
    }

    func callMethod(_ recv: Value, _ name: String, _ pos: [Value], _ kw: [(String, Value)], _ line: Int) throws -> Value {
        func args(_ names: String...) -> BoundArgs { BoundArgs(pos: pos, kw: kw, names: names) }
        switch recv {
        case .dict(let d):
            switch name {
            case "items": return .list(d.pairs.map { .tuple([.string($0.0), $0.1]) })
            case "keys": return .list(d.keys.map { .string($0) })
            case "values": return .list(d.pairs.map { $0.1 })
            case "copy": return recv
            case "get":
                let a = args("key", "default")
                guard let k = a.get(0) else { throw error(line, "get expected at least 1 argument, got 0") }
                if case .string(let key) = k, let v = d[key] { return v }
                return a.get(1) ?? .none
            default: break
            }
        case .list(let items), .tuple(let items):
            switch name {
            case "count":
                guard let x = pos.first else { throw error(line, "count() takes exactly one argument") }
                return .int(items.filter { equal($0, x) }.count)
            case "index":
                guard let x = pos.first else { throw error(line, "index() takes at least 1 argument") }
                if let i = items.firstIndex(where: { equal($0, x) }) { return .int(i) }
                throw error(line, "\(x.repr) is not in list")
            case "copy": return recv
            default: break
            }
        case .string(let s):
            return try stringMethod(s, name, pos, kw, line)
        default:
            break
        }
        throw error(line, "\(objectTypeRepr(recv)) has no method \(pyStringRepr(name))")
    }

    private func stringMethod(_ s: String, _ name: String, _ pos: [Value], _ kw: [(String, Value)], _ line: Int) throws
        -> Value
    {
        func args(_ names: String...) -> BoundArgs { BoundArgs(pos: pos, kw: kw, names: names) }
        func optChars(_ v: Value?) throws -> String? {
            guard let v, !v.isNone else { return nil }
            return try requireString(v, "strip argument", line)
        }
        func affixes(_ v: Value?) throws -> [String] {
            guard let v else { throw error(line, "\(name) expected at least 1 argument") }
            switch v {
            case .string(let p): return [p]
            case .tuple(let ps), .list(let ps): return try ps.map { try requireString($0, "\(name) argument", line) }
            default: throw error(line, "\(name) first arg must be str or a tuple of str, not \(v.typeName)")
            }
        }
        switch name {
        case "startswith":
            let u = Array(s.utf8)
            return .bool(try affixes(pos.first).contains { u.starts(with: Array($0.utf8)) })
        case "endswith":
            let u = Array(s.utf8)
            return .bool(try affixes(pos.first).contains { u.reversed().starts(with: Array($0.utf8).reversed()) })
        case "strip": return .string(pyStrip(s, try optChars(args("chars").get(0)), left: true, right: true))
        case "lstrip": return .string(pyStrip(s, try optChars(args("chars").get(0)), left: true, right: false))
        case "rstrip": return .string(pyStrip(s, try optChars(args("chars").get(0)), left: false, right: true))
        case "split", "rsplit":
            let a = args("sep", "maxsplit")
            let maxsplit = try requireInt(a.get(1), "maxsplit", line) ?? -1
            let parts: [String]
            if let sepV = a.get(0), !sepV.isNone {
                let sep = try requireString(sepV, "separator", line)
                if sep.isEmpty { throw error(line, "empty separator") }
                parts = name == "split" ? pySplit(s, sep, maxsplit) : pyRSplit(s, sep, maxsplit)
            } else {
                parts = pySplitWhitespace(s, maxsplit, fromRight: name == "rsplit")
            }
            return .list(parts.map { .string($0) })
        case "splitlines":
            return .list(pySplitLines(s, keepends: args("keepends").bool(0, false)).map { .string($0) })
        case "replace":
            let a = args("old", "new", "count")
            guard let old = a.get(0), let new = a.get(1) else { throw error(line, "replace expected at least 2 arguments") }
            let count = try requireInt(a.get(2), "count", line) ?? -1
            guard
                let r = try pyReplace(
                    s, try requireString(old, "replace argument", line), try requireString(new, "replace argument", line),
                    count, limit: limits.maxOutputBytes)
            else { throw EbbError(.resourceExhausted, "template line \(line): string too large") }
            return .string(r)
        case "upper": return .string(pyUpper(s))
        case "lower": return .string(pyLower(s))
        case "title": return .string(pyTitle(s))
        case "capitalize": return .string(pyCapitalize(s))
        case "swapcase":
            var out = ""
            for u in s.unicodeScalars {
                if u.properties.isUppercase { out += u.properties.lowercaseMapping } else if u.properties.isLowercase {
                    out += u.properties.uppercaseMapping
                } else { out.unicodeScalars.append(u) }
            }
            return .string(out)
        case "find", "rfind", "index", "rindex", "count":
            guard let subV = pos.first else { throw error(line, "\(name) expected at least 1 argument") }
            let sub = try requireString(subV, "\(name) argument", line)
            let hay = scalars(s)
            let needle = scalars(sub)
            var found: [Int] = []
            if needle.isEmpty {
                found = name == "count" ? Array(0...hay.count) : [name.hasPrefix("r") ? hay.count : 0]
            } else if needle.count <= hay.count {
                var i = 0
                while i <= hay.count - needle.count {
                    if hay[i..<i + needle.count].elementsEqual(needle) {
                        found.append(i)
                        i += name == "count" ? needle.count : 1
                    } else {
                        i += 1
                    }
                }
            }
            switch name {
            case "count": return .int(found.count)
            case "find": return .int(found.first ?? -1)
            case "rfind": return .int(found.last ?? -1)
            default:
                guard let i = name == "index" ? found.first : found.last else { throw error(line, "substring not found") }
                return .int(i)
            }
        case "join":
            guard let it = pos.first else { throw error(line, "join() takes exactly one argument") }
            let parts = try iterate(it, line).map { v -> String in
                guard case .string(let p) = v else { throw error(line, "sequence item: expected str instance, \(v.typeName) found") }
                return p
            }
            let r = parts.joined(separator: s)
            try checkSize(r.utf8.count, line)
            return .string(r)
        case "format":
            return .string(try braceFormat(s, pos, kw, line))
        case "isdigit", "isdecimal", "isnumeric":
            return .bool(!s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.numericType != nil })
        case "isalpha":
            return .bool(!s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.isAlphabetic })
        case "isalnum":
            return .bool(!s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.isAlphabetic || $0.properties.numericType != nil })
        case "isspace":
            return .bool(!s.isEmpty && s.unicodeScalars.allSatisfy(pyIsSpace))
        case "isupper":
            return .bool(s.unicodeScalars.contains(where: isCased) && !s.unicodeScalars.contains { $0.properties.isLowercase })
        case "islower":
            return .bool(s.unicodeScalars.contains(where: isCased) && !s.unicodeScalars.contains { $0.properties.isUppercase })
        case "removeprefix", "removesuffix":
            guard let aV = pos.first else { throw error(line, "\(name) takes exactly one argument") }
            let a = Array(try requireString(aV, "\(name) argument", line).utf8)
            let u = Array(s.utf8)
            if name == "removeprefix", u.starts(with: a) { return .string(String(decoding: u[a.count...], as: UTF8.self)) }
            if name == "removesuffix", !a.isEmpty, u.count >= a.count, Array(u[(u.count - a.count)...]) == a {
                return .string(String(decoding: u[..<(u.count - a.count)], as: UTF8.self))
            }
            return .string(s)
        case "zfill":
            let width = try requireInt(pos.first, "width", line) ?? 0
            let sc = scalars(s)
            guard width > sc.count else { return .string(s) }
            try checkSize(width, line)
            let zeros = String(repeating: "0", count: width - sc.count)
            if let f = sc.first, f == "+" || f == "-" { return .string(String(f) + zeros + string(sc.dropFirst())) }
            return .string(zeros + s)
        case "ljust", "rjust", "center":
            let width = try requireInt(pos.first, "width", line) ?? 0
            let fill = pos.count > 1 ? try requireString(pos[1], "fill character", line) : " "
            guard fill.unicodeScalars.count == 1 else { throw error(line, "the fill character must be exactly one character long") }
            return .string(try pad(s, width, fill, align: name == "ljust" ? "left" : name == "rjust" ? "right" : "center", line))
        case "partition", "rpartition":
            guard let sepV = pos.first else { throw error(line, "\(name) takes exactly one argument") }
            let sep = try requireString(sepV, "separator", line)
            if sep.isEmpty { throw error(line, "empty separator") }
            let parts = name == "partition" ? pySplit(s, sep, 1) : pyRSplit(s, sep, 1)
            if parts.count == 2 { return .tuple([.string(parts[0]), .string(sep), .string(parts[1])]) }
            return name == "partition" ? .tuple([.string(s), .string(""), .string("")]) : .tuple([.string(""), .string(""), .string(s)])
        default:
            throw error(line, "'str object' has no method \(pyStringRepr(name))")
        }
    }

    /// Python `str.format` for `{}`, `{0}`, `{name}`, `{name.attr}`/`{0[key]}`-free fields with
    /// optional `!r`/`!s` conversion; format specs are not supported.
    func braceFormat(_ fmt: String, _ pos: [Value], _ kw: [(String, Value)], _ line: Int) throws -> String {
        let sc = scalars(fmt)
        var out = ""
        var i = 0
        var auto = 0
        while i < sc.count {
            let c = sc[i]
            if c == "{" {
                if i + 1 < sc.count, sc[i + 1] == "{" { out += "{"; i += 2; continue }
                guard let close = sc[i...].firstIndex(of: "}") else { throw error(line, "single '{' encountered in format string") }
                var field = string(sc[(i + 1)..<close])
                i = close + 1
                var conversion: String? = nil
                if let bang = field.firstIndex(of: "!") {
                    conversion = String(field[field.index(after: bang)...])
                    field = String(field[..<bang])
                }
                if field.contains(":") { throw error(line, "format specifications in str.format are not supported") }
                let v: Value
                if field.isEmpty {
                    guard auto < pos.count else { throw error(line, "Replacement index \(auto) out of range") }
                    v = pos[auto]
                    auto += 1
                } else if let n = Int(field) {
                    guard n >= 0, n < pos.count else { throw error(line, "Replacement index \(n) out of range") }
                    v = pos[n]
                } else {
                    guard let x = kw.first(where: { $0.0 == field })?.1 else { throw error(line, "KeyError: \(pyStringRepr(field))") }
                    v = x
                }
                out += conversion == "r" ? v.repr : v.str
                try checkSize(out.utf8.count, line)
                continue
            }
            if c == "}" {
                if i + 1 < sc.count, sc[i + 1] == "}" { out += "}"; i += 2; continue }
                throw error(line, "single '}' encountered in format string")
            }
            out.unicodeScalars.append(c)
            i += 1
        }
        return out
    }
}
