/// GPT-2's byte-to-unicode alphabet: every byte maps to one printable Unicode scalar, so
/// byte-level BPE vocabularies can be stored as strings (a space is `Ġ`, a newline `Ċ`).
enum ByteLevelAlphabet {
    /// Scalar value for each byte 0...255.
    static let byteToScalar: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 256)
        var extra: UInt32 = 0
        for b in 0..<256 {
            if (33...126).contains(b) || (161...172).contains(b) || (174...255).contains(b) {
                table[b] = UInt32(b)
            } else {
                table[b] = 256 + extra
                extra += 1
            }
        }
        return table
    }()

    /// Byte for each scalar value below `scalarToByte.count`, or -1 when the scalar is not in
    /// the alphabet.
    static let scalarToByte: [Int16] = {
        var table = [Int16](repeating: -1, count: 324)
        for (b, s) in byteToScalar.enumerated() { table[Int(s)] = Int16(b) }
        return table
    }()

    /// The 256 alphabet characters ordered by scalar value (the order vocabularies list them).
    static let orderedBytes: [UInt8] = {
        (0..<256).map { UInt8($0) }.sorted { byteToScalar[Int($0)] < byteToScalar[Int($1)] }
    }()

    /// Maps every UTF-8 byte of `text` to its alphabet character.
    static func encode<S: StringProtocol>(_ text: S) -> String {
        var view = String.UnicodeScalarView()
        for b in text.utf8 {
            // All table values are valid scalars (< 0x200).
            if let s = Unicode.Scalar(byteToScalar[Int(b)]) { view.append(s) }
        }
        return String(view)
    }

    /// Maps bytes to alphabet characters, as UTF-8.
    static func encode(bytes: some Sequence<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        for b in bytes {
            let v = byteToScalar[Int(b)]
            if v < 0x80 {
                out.append(UInt8(v))
            } else {
                out.append(UInt8(0xC0 | (v >> 6)))
                out.append(UInt8(0x80 | (v & 0x3F)))
            }
        }
        return out
    }

    static func scalarString(_ byte: UInt8) -> String {
        guard let s = Unicode.Scalar(byteToScalar[Int(byte)]) else { return "" }
        return String(Character(s))
    }

    /// The bytes `token` stands for when every character is in the alphabet, else nil
    /// (Hugging Face's ByteLevel decoder then keeps the token's own UTF-8 bytes).
    static func decode(_ token: String) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(token.utf8.count)
        for s in token.unicodeScalars {
            let v = Int(s.value)
            guard v < scalarToByte.count, scalarToByte[v] >= 0 else { return nil }
            out.append(UInt8(scalarToByte[v]))
        }
        return out
    }
}
