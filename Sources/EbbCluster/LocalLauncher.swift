import EbbCore
import Foundation

/// Starts engine cores as child processes of this host (`ebb engine-core …`), watches them,
/// and stops them. A child that exits while the launcher still wants it is reported through
/// `onExit`; children also watch their parent and exit when it goes away (see
/// `ParentWatch`), so none outlives `ebb serve`.
public final class LocalLauncher: Launcher, @unchecked Sendable {
    public let executable: URL
    private let lock = NSLock()
    private var children: [String: Process] = [:]
    private var stopping = false
    private let log: @Sendable (String) -> Void

    public init(executable: URL, log: @escaping @Sendable (String) -> Void) {
        self.executable = executable
        self.log = log
    }

    /// The running executable (for launching `ebb engine-core` from `ebb serve`).
    public static func currentExecutable() -> URL {
        if let path = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            return URL(fileURLWithPath: path)
        }
        return URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL
    }

    /// Starts engine core `id` as a child process (`resources` are the host's to share).
    public func launch(id: String, arguments: [String], environment: [String: String], resources: LaunchResources,
                       onExit: @escaping @Sendable (_ id: String, _ description: String) -> Void) throws {
        let p = Process()
        p.executableURL = executable
        p.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        env["EBB_PARENT_PID"] = String(ProcessInfo.processInfo.processIdentifier)
        p.environment = env
        p.terminationHandler = { [weak self] proc in
            guard let self else { return }
            let expected = self.lock.withLock {
                let known = self.children.removeValue(forKey: id) != nil
                return self.stopping || !known
            }
            if !expected { onExit(id, "(pid \(proc.processIdentifier)) exited with status \(proc.terminationStatus)") }
        }
        do {
            try p.run()
        } catch {
            throw EbbError(.io, "could not start engine core \(id) (\(executable.path)): \(error)")
        }
        lock.withLock { children[id] = p }
    }

    /// Stops one engine core: SIGTERM, then SIGKILL after `grace`. No `onExit` for it.
    public func stop(id: String, grace: Duration) {
        guard let p = lock.withLock({ children.removeValue(forKey: id) }) else { return }
        if p.isRunning { kill(p.processIdentifier, SIGTERM) }
        let end = ContinuousClock.now + grace
        while p.isRunning && ContinuousClock.now < end { Thread.sleep(forTimeInterval: 0.02) }
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
    }

    /// Fences a lost engine core: SIGKILL at once (a stopped or hung process cannot come
    /// back and act on stale state). Its `onExit` does not run.
    public func fence(id: String) {
        guard let p = lock.withLock({ children.removeValue(forKey: id) }) else { return }
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
    }

    public var runningPids: [String: Int32] {
        lock.withLock { children.mapValues { $0.processIdentifier } }
    }

    /// Sends SIGTERM to every child, waits up to `grace`, then SIGKILLs what is left.
    public func stopAll(grace: Duration) {
        let procs: [Process] = lock.withLock {
            stopping = true
            return Array(children.values)
        }
        for p in procs where p.isRunning { kill(p.processIdentifier, SIGTERM) }
        let end = ContinuousClock.now + grace
        while procs.contains(where: { $0.isRunning }) && ContinuousClock.now < end {
            Thread.sleep(forTimeInterval: 0.02)
        }
        for p in procs where p.isRunning {
            log("engine core pid \(p.processIdentifier) did not stop within \(grace); killing it")
            kill(p.processIdentifier, SIGKILL)
        }
        for p in procs { p.waitUntilExit() }
    }
}

/// Inside an engine core: exits the process when the parent that started it goes away (it
/// would otherwise become an orphan).
public enum ParentWatch {
    public static func start(log: @escaping @Sendable (String) -> Void) {
        guard let text = ProcessInfo.processInfo.environment["EBB_PARENT_PID"], let parent = Int32(text) else { return }
        let thread = Thread {
            while true {
                if getppid() != parent {
                    log("the parent process \(parent) is gone; exiting")
                    exit(1)
                }
                Thread.sleep(forTimeInterval: 0.2)
            }
        }
        thread.name = "ebb-parent-watch"
        thread.start()
    }
}
