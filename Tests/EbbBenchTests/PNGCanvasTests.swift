@testable import EbbBench
import Testing

struct PNGCanvasTests {
    @Test func writesAValidPNG() {
        var c = PNGCanvas(width: 4, height: 3)
        c.line(0, 0, 3, 2, .red)
        let png = c.png()
        #expect(Array(png.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        // IEND's CRC is fixed; the IHDR says 4 × 3, RGB 8 bits.
        #expect(Array(png.suffix(8)) == [0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82])
        #expect(Array(png[16..<26]) == [0, 0, 0, 4, 0, 0, 0, 3, 8, 2])
        #expect(PNGCanvas.crc32(Array("IEND".utf8)) == 0xAE42_6082)
        #expect(PNGCanvas.adler32(Array("Wikipedia".utf8)) == 0x11E6_0398)
    }
}
