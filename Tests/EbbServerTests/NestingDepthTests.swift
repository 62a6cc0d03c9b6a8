@testable import EbbServer
import Testing

@Suite struct NestingDepthTests {
    @Test func depthIgnoresBracketsInsideStrings() {
        #expect(OpenAIServer.nestingDepth(Array(#"{"a": "[[[[[[", "b": [1, {"c": 2}]}"#.utf8)) == 3)
        #expect(OpenAIServer.nestingDepth(Array(#"{"a": "\"[[[", "b": 1}"#.utf8)) == 1)
    }

    @Test func deepNestingIsMeasured() {
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        #expect(OpenAIServer.nestingDepth(Array(deep.utf8)) == 10_000)
        #expect(OpenAIServer.nestingDepth(Array(deep.utf8)) > OpenAIServer.maxJSONDepth)
    }
}
