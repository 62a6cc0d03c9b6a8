import ArgumentParser

@main
struct Ebb: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ebb", abstract: "Ebb: elastic expert-parallel MoE serving")
}
