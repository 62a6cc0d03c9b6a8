import Foundation
import Testing
import EbbTensor

@Suite struct TensorViewTests {
    @Test func viewsAddressTheRightElements() throws {
        let backend = makeBackend()
        let values = (0..<24).map { Float($0) }
        let t = try upload(backend, values, [2, 3, 4])
        #expect(t.rows == 6 && t.columns == 4 && t.isContiguous)
        let cols = t.columnSlice(1..<3)
        #expect(cols.shape == [2, 3, 2] && cols.rowStride == 4 && !cols.isContiguous)
        #expect(backend.downloadFloats(cols) == [1, 2, 5, 6, 9, 10, 13, 14, 17, 18, 21, 22])
        #expect(backend.downloadFloats(cols.rowSlice(2..<4)) == [9, 10, 13, 14])
        #expect(backend.downloadFloats(cols.reshaped([6, 2])) == backend.downloadFloats(cols))
        #expect(backend.downloadFloats(t.slice(first: 1..<2)) == Array(values[12..<24]))
        #expect(backend.downloadFloats(t.reshaped([4, 6]).rowSlice(3..<4)) == Array(values[18..<24]))
        let ints = try uploadInts(backend, (0..<12).map { Int32($0) }, [3, 4])
        #expect(backend.downloadInts(ints.columnSlice(2..<4)) == [2, 3, 6, 7, 10, 11])
    }

    @Test func copyAndFillRespectStrides() throws {
        let backend = makeBackend()
        let src = try upload(backend, (0..<12).map { Float($0) }, [3, 4])
        let (dst, parent) = try stridedView(backend, [Float](repeating: 0, count: 6), shape: [3, 2], lead: 1, trail: 1)
        backend.copy(src.columnSlice(1..<3), into: dst)
        #expect(backend.downloadFloats(dst) == [1, 2, 5, 6, 9, 10])
        #expect(gapsUntouched(backend, parent, lead: 1, cols: 2))
        backend.fill(dst, value: -2)
        #expect(backend.downloadFloats(dst) == [-2, -2, -2, -2, -2, -2])
        #expect(gapsUntouched(backend, parent, lead: 1, cols: 2))
        // 16-bit fills write the narrowed value, on strided views too.
        let half = try backend.empty([2, 3], dtype: .bf16)
        backend.fill(half.columnSlice(1..<2), value: 1 + 0x1p-8)
        #expect(backend.downloadFloats(half) == [0, 1, 0, 0, 1, 0])
        let empty = try backend.empty([0, 5], dtype: .f32)
        #expect(backend.downloadFloats(empty).isEmpty)
        #expect(throws: TensorError.self) { try backend.empty([2, -1], dtype: .f32) }
    }
}
