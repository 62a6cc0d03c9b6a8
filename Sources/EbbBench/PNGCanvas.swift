import Foundation

/// An RGB image to draw simple charts on, written as PNG (uncompressed deflate blocks: no
/// zlib needed; a chart of a few hundred KB).
public struct PNGCanvas: Sendable {
    public struct Color: Sendable, Equatable {
        public var r, g, b: UInt8
        public init(_ r: UInt8, _ g: UInt8, _ b: UInt8) {
            self.r = r
            self.g = g
            self.b = b
        }
        public static let white = Color(255, 255, 255)
        public static let black = Color(0, 0, 0)
        public static let grey = Color(225, 225, 225)
        public static let blue = Color(31, 119, 180)
        public static let green = Color(44, 160, 44)
        public static let red = Color(214, 39, 40)
        public static let orange = Color(255, 127, 14)
        public static let purple = Color(148, 103, 189)
    }

    public let width: Int
    public let height: Int
    private var pixels: [UInt8]

    public init(width: Int, height: Int, background: Color = .white) {
        self.width = max(1, width)
        self.height = max(1, height)
        pixels = [UInt8](repeating: 0, count: self.width * self.height * 3)
        fill(x: 0, y: 0, w: self.width, h: self.height, background)
    }

    public mutating func set(_ x: Int, _ y: Int, _ c: Color) {
        guard x >= 0, y >= 0, x < width, y < height else { return }
        let i = (y * width + x) * 3
        pixels[i] = c.r
        pixels[i + 1] = c.g
        pixels[i + 2] = c.b
    }

    public mutating func fill(x: Int, y: Int, w: Int, h: Int, _ c: Color) {
        for yy in max(0, y)..<min(height, y + h) {
            for xx in max(0, x)..<min(width, x + w) { set(xx, yy, c) }
        }
    }

    /// A line (Bresenham), `thickness` pixels wide.
    public mutating func line(_ x0: Int, _ y0: Int, _ x1: Int, _ y1: Int, _ c: Color, thickness: Int = 1) {
        var x = x0, y = y0
        let dx = abs(x1 - x0), dy = -abs(y1 - y0)
        let sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1
        var err = dx + dy
        while true {
            fill(x: x - thickness / 2, y: y - thickness / 2, w: thickness, h: thickness, c)
            if x == x1 && y == y1 { break }
            let e2 = 2 * err
            if e2 >= dy { err += dy; x += sx }
            if e2 <= dx { err += dx; y += sy }
        }
    }

    /// `values` as a line across the box (`x`, `y`, `w`, `h`), scaled so `top` is its upper edge.
    public mutating func series(_ values: [Double], x: Int, y: Int, w: Int, h: Int, top: Double, _ c: Color,
                                thickness: Int = 2) {
        guard values.count > 1, top > 0 else { return }
        func px(_ i: Int) -> Int { x + Int(Double(i) / Double(values.count - 1) * Double(w - 1)) }
        func py(_ v: Double) -> Int { y + h - 1 - Int(min(max(v / top, 0), 1) * Double(h - 1)) }
        // One point per pixel column (the column's maximum), so long series stay readable.
        var lastX = px(0), lastY = py(values[0])
        var column = lastX, columnMax = values[0]
        for i in 1..<values.count {
            let cx = px(i)
            if cx == column {
                columnMax = max(columnMax, values[i])
                continue
            }
            let cy = py(columnMax)
            line(lastX, lastY, column, cy, c, thickness: thickness)
            (lastX, lastY) = (column, cy)
            column = cx
            columnMax = values[i]
        }
        line(lastX, lastY, column, py(columnMax), c, thickness: thickness)
    }

    /// The PNG file: rows filtered by their left neighbour (PNG's "Sub"), then one
    /// fixed-Huffman deflate block whose only matches repeat the previous byte — enough for
    /// charts, whose rows are long runs of one color.
    public func png() -> [UInt8] {
        var filtered = [UInt8]()
        filtered.reserveCapacity(height * (width * 3 + 1))
        for row in 0..<height {
            filtered.append(1)  // filter: Sub
            let base = row * width * 3
            for i in 0..<(width * 3) {
                filtered.append(i < 3 ? pixels[base + i] : pixels[base + i] &- pixels[base + i - 3])
            }
        }
        var zlib: [UInt8] = [0x78, 0x01]
        zlib += Deflate.fixedHuffman(filtered)
        zlib += Self.bigEndian(Self.adler32(filtered))
        var out: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        out += Self.chunk("IHDR", Self.bigEndian(UInt32(width)) + Self.bigEndian(UInt32(height)) + [8, 2, 0, 0, 0])
        out += Self.chunk("IDAT", zlib)
        out += Self.chunk("IEND", [])
        return out
    }

    static func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let body = Array(type.utf8) + data
        return bigEndian(UInt32(data.count)) + body + bigEndian(crc32(body))
    }

    static func bigEndian(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }

    static let crcTable: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = crcTable[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }

    static func adler32(_ bytes: [UInt8]) -> UInt32 {
        var a: UInt32 = 1, b: UInt32 = 0
        for chunk in stride(from: 0, to: bytes.count, by: 5552) {
            for x in bytes[chunk..<min(chunk + 5552, bytes.count)] {
                a += UInt32(x)
                b += a
            }
            a %= 65_521
            b %= 65_521
        }
        return (b << 16) | a
    }
}

/// Deflate (RFC 1951) with the fixed Huffman codes and run-length matches only.
enum Deflate {
    private struct Bits {
        var bytes: [UInt8] = []
        var buffer: UInt32 = 0
        var count = 0

        /// `n` bits of `value`, least significant first.
        mutating func write(_ value: UInt32, _ n: Int) {
            buffer |= value << UInt32(count)
            count += n
            while count >= 8 {
                bytes.append(UInt8(buffer & 0xFF))
                buffer >>= 8
                count -= 8
            }
        }

        /// A Huffman code of `n` bits, most significant first.
        mutating func code(_ value: UInt32, _ n: Int) {
            var reversed: UInt32 = 0
            for i in 0..<n where value & (1 << UInt32(i)) != 0 { reversed |= 1 << UInt32(n - 1 - i) }
            write(reversed, n)
        }

        mutating func finish() -> [UInt8] {
            if count > 0 { bytes.append(UInt8(buffer & 0xFF)) }
            return bytes
        }
    }

    private static let lengthBase: [Int] = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99,
                                            115, 131, 163, 195, 227, 258]
    private static let lengthExtra: [Int] = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]

    private static func symbol(_ sym: Int, _ bits: inout Bits) {
        switch sym {
        case 0...143: bits.code(UInt32(0x30 + sym), 8)
        case 144...255: bits.code(UInt32(0x190 + sym - 144), 9)
        case 256...279: bits.code(UInt32(sym - 256), 7)
        default: bits.code(UInt32(0xC0 + sym - 280), 8)
        }
    }

    /// A match of `length` (3...258) at distance 1.
    private static func match(_ length: Int, _ bits: inout Bits) {
        var i = lengthBase.count - 1  // 258 has a code of its own
        while lengthBase[i] > length { i -= 1 }
        symbol(257 + i, &bits)
        if lengthExtra[i] > 0 { bits.write(UInt32(length - lengthBase[i]), lengthExtra[i]) }
        bits.code(0, 5)  // distance code 0: distance 1
    }

    static func fixedHuffman(_ data: [UInt8]) -> [UInt8] {
        var bits = Bits()
        bits.write(1, 1)  // the last block
        bits.write(1, 2)  // fixed Huffman codes
        var i = 0
        while i < data.count {
            symbol(Int(data[i]), &bits)
            var run = 0
            while i + 1 + run < data.count, data[i + 1 + run] == data[i] { run += 1 }
            i += 1
            while run >= 3 {
                let n = min(run, 258)
                // Leave no tail of 1 or 2 after a split (they would need literals anyway).
                match(n, &bits)
                run -= n
                i += n
            }
            for _ in 0..<run {
                symbol(Int(data[i]), &bits)
                i += 1
            }
        }
        symbol(256, &bits)
        return bits.finish()
    }
}
