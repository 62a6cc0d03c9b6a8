import Testing
import EbbCore
@testable import EbbSampling

@Test func smoke() throws {
    var st = SamplingState(params: SamplingParams(temperature: 0), promptTokenIds: [1])
    let out = try Sampler().sample(logits: [0, 3, 1], state: &st)
    #expect(out.tokenId == 1)
}
