import Testing

@Test func placeholder_EbbEngineTests() { #expect(Bool(true)) }
