import Testing

@Test func placeholder_EbbSamplingTests() { #expect(Bool(true)) }
