import Testing

@Test func placeholder_EbbTensorTests() { #expect(Bool(true)) }
