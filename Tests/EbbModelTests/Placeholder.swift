import Testing

@Test func placeholder_EbbModelTests() { #expect(Bool(true)) }
