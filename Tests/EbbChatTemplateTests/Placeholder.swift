import Testing

@Test func placeholder_EbbChatTemplateTests() { #expect(Bool(true)) }
