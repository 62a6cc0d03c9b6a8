import Testing

@Test func placeholder_EbbTokenizerTests() { #expect(Bool(true)) }
