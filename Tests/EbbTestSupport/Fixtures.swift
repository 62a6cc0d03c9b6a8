import Foundation

/// Locates `../shared/fixtures` (or `EBB_FIXTURES`). Tests that need fixtures are enabled
/// when the folder exists, and also under `CI=true` so that a missing folder fails there
/// instead of being skipped.
public enum Fixtures {
    public static let directory: URL = {
        if let path = ProcessInfo.processInfo.environment["EBB_FIXTURES"], !path.isEmpty {
            return URL(fileURLWithPath: path, isDirectory: true)
        }
        // #filePath = <root>/Tests/EbbTestSupport/Fixtures.swift
        let root = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return root.deletingLastPathComponent().appendingPathComponent("shared/fixtures", isDirectory: true)
    }()

    public static var exist: Bool {
        FileManager.default.fileExists(atPath: directory.appendingPathComponent("tokenizer/tokenizer.json").path)
    }

    public static var isCI: Bool { ProcessInfo.processInfo.environment["CI"] == "true" }

    /// True when fixture tests should run: the fixtures are there, or CI demands them.
    public static var enabled: Bool { exist || isCI }

    public static let skipMessage = "fixtures not found at \(directory.path); set EBB_FIXTURES (skipped outside CI)"

    public static func url(_ relative: String) -> URL {
        directory.appendingPathComponent(relative)
    }

    public static let checkpointNames = [
        "qwen3-moe-tiny-f32", "qwen3-moe-tiny-bf16",
        "mixtral-tiny-f32", "mixtral-tiny-bf16",
        "deepseek-v3-tiny-f32", "deepseek-v3-tiny-bf16",
    ]
}
