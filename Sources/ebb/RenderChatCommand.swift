import ArgumentParser
import EbbCore
import EbbTokenizer
import Foundation

/// `ebb render-chat`: print a conversation rendered by a model's chat template, exactly.
struct RenderChat: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "render-chat",
        abstract: "Render messages with a model's chat template (prints the prompt exactly, no newline added)")

    @Option(help: "Directory holding tokenizer_config.json (and chat_template.jinja when present)")
    var model: String

    @Option(help: "JSON file holding the messages array")
    var messages: String

    @Flag(help: "End with the assistant turn's opening")
    var addGenerationPrompt = false

    func run() throws {
        try runReportingErrors {
            guard let template = try loadChatTemplate(model) else {
                throw EbbError(.template, "\(model) has no chat template")
            }
            let data: Data
            do {
                data = try Data(contentsOf: URL(fileURLWithPath: messages))
            } catch {
                throw EbbError(.io, "cannot read \(messages): \(error.localizedDescription)")
            }
            let text = try template.render(messagesJSON: data, addGenerationPrompt: addGenerationPrompt)
            FileHandle.standardOutput.write(Data(text.utf8))
        }
    }
}
