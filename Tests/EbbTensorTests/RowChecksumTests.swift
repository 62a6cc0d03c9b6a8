import EbbTensor
import Testing

/// `rowChecksums` on the CPU backend: the same values give the same checksum in f32 and
/// bf16, and any changed or moved element changes it.
struct RowChecksumTests {
    let backend = CPUBackend()

    func tensor(_ values: [Float], rows: Int, dtype: DType) throws -> Tensor {
        try values.withUnsafeBytes { try backend.upload($0, sourceDType: .f32, shape: [rows, values.count / rows], dtype: dtype) }
    }

    @Test func bf16AndF32CopiesOfTheSameValuesAgree() throws {
        // Values exact in bf16 (a few significant bits).
        let values: [Float] = (0..<64).map { Float(($0 * 37) % 23 - 11) * 0.125 }
        let f32 = backend.rowChecksums(try tensor(values, rows: 4, dtype: .f32))
        let bf16 = backend.rowChecksums(try tensor(values, rows: 4, dtype: .bf16))
        #expect(f32 == bf16)
        #expect(Set(f32).count == 4)
    }

    @Test func aChangedOrMovedElementChangesTheChecksum() throws {
        let values: [Float] = (0..<32).map { Float($0) - 7.5 }
        let base = backend.rowChecksums(try tensor(values, rows: 1, dtype: .f32))[0]
        var changed = values
        changed[17] = changed[17].nextUp
        var swapped = values
        swapped.swapAt(3, 20)
        #expect(backend.rowChecksums(try tensor(changed, rows: 1, dtype: .f32))[0] != base)
        #expect(backend.rowChecksums(try tensor(swapped, rows: 1, dtype: .f32))[0] != base)
    }

    @Test func aColumnSliceIsCheckedOverItsOwnColumns() throws {
        let values: [Float] = (0..<40).map { Float($0) }
        let wide = try tensor(values, rows: 2, dtype: .f32)
        let narrow = try tensor([Float](values[4..<12]) + [Float](values[24..<32]), rows: 2, dtype: .f32)
        #expect(backend.rowChecksums(wide.columnSlice(4..<12)) == backend.rowChecksums(narrow))
    }
}
