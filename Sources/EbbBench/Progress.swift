import Foundation
import Synchronization

/// A one-line progress bar, e.g. `[##########..........] 50/100 (2 failed) 12.3s`.
public enum ProgressLine {
    public static func render(done: Int, total: Int, failed: Int, elapsed: Double, width: Int = 30) -> String {
        let t = max(total, 1)
        let d = min(max(done, 0), t)
        let filled = width * d / t
        var s = "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "] \(done)/\(total)"
        if failed > 0 { s += " (\(failed) failed)" }
        s += String(format: " %.1fs", elapsed)
        return s
    }
}

/// Redraws a `ProgressLine` on stderr with `\r` as requests finish; draws nothing when
/// disabled (e.g. stderr is not a terminal). Safe to call from any task.
public final class ProgressReporter: Sendable {
    private struct State {
        var done = 0
        var failed = 0
        var lastDraw = -1.0
    }

    public let total: Int
    public let enabled: Bool
    private let startTime = ContinuousClock.now
    private let state = Mutex(State())

    public init(total: Int, enabled: Bool) {
        self.total = total
        self.enabled = enabled
    }

    /// Whether stderr is a terminal.
    public static var stderrIsTerminal: Bool { isatty(2) != 0 }

    public func start() {
        guard enabled else { return }
        state.withLock { _ in draw(done: 0, failed: 0) }
    }

    public func record(success: Bool) {
        guard enabled else { return }
        state.withLock { s in
            s.done += 1
            if !success { s.failed += 1 }
            let now = elapsed()
            // At most ~20 redraws a second, but always the last one.
            if s.done == total || now - s.lastDraw >= 0.05 {
                s.lastDraw = now
                draw(done: s.done, failed: s.failed)
            }
        }
    }

    /// Ends the line so that later output starts on a fresh one.
    public func finish() {
        guard enabled else { return }
        state.withLock { s in
            draw(done: s.done, failed: s.failed)
            FileHandle.standardError.write(Data("\n".utf8))
        }
    }

    private func elapsed() -> Double {
        let d = ContinuousClock.now - startTime
        return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }

    private func draw(done: Int, failed: Int) {
        let line = ProgressLine.render(done: done, total: total, failed: failed, elapsed: elapsed())
        FileHandle.standardError.write(Data(("\r" + line + "\u{1B}[K").utf8))
    }
}
