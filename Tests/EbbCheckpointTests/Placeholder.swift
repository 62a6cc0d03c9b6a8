import Testing

@Test func placeholder_EbbCheckpointTests() { #expect(Bool(true)) }
