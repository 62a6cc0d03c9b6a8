import EbbCore
import ArgumentParser
import Foundation

@main
struct Ebb: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ebb",
        abstract: "Ebb: elastic expert-parallel serving of Mixture-of-Experts models",
        subcommands: [Serve.self, EngineCoreCommand.self, ScaleCommand.self, AutoscaleCommand.self, EPLBCommand.self, Generate.self, Logits.self, SelfTestCUDA.self, Tokenize.self, Detokenize.self, RenderChat.self, Bench.self])
}

/// Runs a command body, turning thrown errors into a message on stderr and exit code 1.
func runReportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let error as ExitCode {
        throw error
    } catch let error as CleanExit {
        throw error
    } catch {
        FileHandle.standardError.write(Data("error: \(describe(error))\n".utf8))
        throw ExitCode(1)
    }
}
