import ArgumentParser
import EbbCore
import EbbTokenizer
import Foundation

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the token ids of a text as a JSON array")

    @Option(help: "Directory holding tokenizer.json, or builtin:tiny-moe")
    var tokenizer: String

    @Option(help: "Text to encode")
    var text: String

    func run() throws {
        try runReportingErrors {
            let tok = try loadTokenizer(tokenizer)
            print("[" + tok.encode(text).map(String.init).joined(separator: ",") + "]")
        }
    }
}

struct Detokenize: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the text of comma-separated token ids")

    @Option(help: "Directory holding tokenizer.json, or builtin:tiny-moe")
    var tokenizer: String

    @Option(help: "Token ids, e.g. 1,2,3")
    var ids: String

    @Flag(help: "Leave special tokens out of the text")
    var skipSpecialTokens = false

    func run() throws {
        try runReportingErrors {
            let tok = try loadTokenizer(tokenizer)
            let values = try parseIds(ids).map(Int.init)
            print(tok.decode(values, skipSpecialTokens: skipSpecialTokens), terminator: "\n")
        }
    }
}

func loadTokenizer(_ spec: String) throws -> Tokenizer {
    if spec.hasPrefix("builtin:") { return Tokenizer.byteLevel() }
    return try Tokenizer.load(directory: URL(fileURLWithPath: spec, isDirectory: true))
}
