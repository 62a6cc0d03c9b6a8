import EbbCore
import Foundation

/// Engine cores placed and supervised by Ray (`ebb serve --launcher ray`): each rank gets a
/// placement group of one bundle (its CPUs, and a GPU with `--device cuda`) and an actor in
/// it that runs `ebb engine-core` on the node Ray picked. Ray has no Swift API, so a Python
/// helper (`RayHelperScript`, run with `python`) talks to Ray; this class talks to the helper
/// over its stdin/stdout, one JSON object per line. An engine core whose process exits, or
/// whose actor or node dies, is reported through `onExit` like a local child's exit — the
/// coordinator's rank-failure path takes it from there.
public final class RayLauncher: Launcher, @unchecked Sendable {
    /// The `ebb` executable on the Ray nodes (`--engine-core-binary`; by default this one's
    /// path, which must then exist on every node).
    public let executable: String
    /// Alive Ray nodes at start (their addresses), and the address of the helper's node.
    public private(set) var nodes: [String] = []
    public private(set) var driverAddress = "127.0.0.1"
    /// How long a rank's bundle may wait for Ray to find room before its launch fails.
    public let placementTimeout: Duration

    private let helper: Process
    private let input: FileHandle
    private let cond = NSCondition()
    private var replies: [String: JSONValue] = [:]
    private var watchers: [String: @Sendable (String, String) -> Void] = [:]
    private var helperGone = false
    private var started = false
    private let log: @Sendable (String) -> Void

    /// Starts the helper and connects it to the Ray cluster at `address` (`auto`: the
    /// cluster this host belongs to). Throws with the helper's message when Ray is missing
    /// or unreachable; nothing is started then.
    public init(address: String, python: String = "python3", executable: String, placementTimeout: Duration = .seconds(60),
                startTimeout: Duration = .seconds(120), log: @escaping @Sendable (String) -> Void) throws {
        self.executable = executable
        self.placementTimeout = placementTimeout
        self.log = log
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [python, "-c", RayHelperScript.source, address]
        let stdin = Pipe(), stdout = Pipe()
        p.standardInput = stdin
        p.standardOutput = stdout
        helper = p
        input = stdin.fileHandleForWriting
        do {
            try p.run()
        } catch {
            throw EbbError(.unavailable, "could not start the Ray helper with \(python): \(error)")
        }
        let reader = Thread { [weak self] in self?.read(stdout.fileHandleForReading) }
        reader.name = "ebb-ray-helper"
        reader.start()
        guard let ready = wait(for: "startup", timeout: startTimeout) else {
            kill(p.processIdentifier, SIGKILL)
            throw EbbError(.unavailable, "the Ray helper did not connect to '\(address)' within \(startTimeout)")
        }
        if ready["event"]?.stringValue != "ready" {
            kill(p.processIdentifier, SIGKILL)
            throw EbbError(.unavailable, ready["error"]?.stringValue ?? "the Ray helper failed to start")
        }
        nodes = ready["nodes"]?.arrayValue?.compactMap(\.stringValue) ?? []
        driverAddress = ready["driver_ip"]?.stringValue ?? "127.0.0.1"
        log("Ray: connected to '\(address)', \(nodes.count) alive node(s) \(nodes), resources \(ready["resources"]?.serialized() ?? "{}")")
    }

    /// Reads the helper's events until it exits.
    private func read(_ handle: FileHandle) {
        var buffer = Data()
        while true {
            let chunk = handle.availableData
            if chunk.isEmpty { break }
            buffer.append(chunk)
            while let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self)
                buffer.removeSubrange(buffer.startIndex...newline)
                self.handle(line: line)
            }
        }
        cond.lock()
        helperGone = true
        let orphans = watchers
        watchers = [:]
        cond.broadcast()
        cond.unlock()
        if !orphans.isEmpty { log("Ray: the helper exited; its engine cores' actors go with it") }
        for (id, onExit) in orphans { onExit(id, "the Ray helper of this deployment exited") }
    }

    private func handle(line: String) {
        guard line.hasPrefix("EBB-RAY "), let event = try? JSONValue.parse(Data(line.dropFirst(8).utf8)) else {
            if !line.isEmpty { log("Ray helper: \(line)") }
            return
        }
        let kind = event["event"]?.stringValue ?? ""
        let id = event["id"]?.stringValue ?? ""
        switch kind {
        case "exited":
            let onExit = cond.withLock { watchers.removeValue(forKey: id) }
            onExit?(id, event["description"]?.stringValue ?? "its Ray actor ended")
        case "ready", "error":
            // The first of these answers the start-up; later errors are only logged.
            let startup = cond.withLock { () -> Bool in
                guard !started else { return false }
                started = true
                replies["startup"] = event
                cond.broadcast()
                return true
            }
            if !startup { log("Ray helper: \(event["error"]?.stringValue ?? line)") }
        default:
            cond.withLock {
                replies[id] = event
                cond.broadcast()
            }
        }
    }

    private func wait(for key: String, timeout: Duration) -> JSONValue? {
        let deadline = Date(timeIntervalSinceNow: timeout.seconds)
        cond.lock()
        defer { cond.unlock() }
        while replies[key] == nil && !helperGone {
            if !cond.wait(until: deadline) { break }
        }
        return replies.removeValue(forKey: key)
    }

    private func send(_ command: JSONValue) throws {
        let gone = cond.withLock { helperGone }
        guard !gone else { throw EbbError(.unavailable, "the Ray helper is not running") }
        do {
            try input.write(contentsOf: Data((command.serialized() + "\n").utf8))
        } catch {
            throw EbbError(.unavailable, "the Ray helper is not running: \(error)")
        }
    }

    public func launch(id: String, arguments: [String], environment: [String: String], resources: LaunchResources,
                       onExit: @escaping @Sendable (_ id: String, _ description: String) -> Void) throws {
        // The engine core sees the Ray worker's environment plus Ebb's own settings (not the
        // HTTP API keys: engine cores have no use for them, and Ray keeps task arguments).
        let private_ = ["EBB_PARENT_PID", "EBB_API_KEY", "EBB_ADMIN_API_KEY"]
        var env = ProcessInfo.processInfo.environment.filter { $0.key.hasPrefix("EBB_") && !private_.contains($0.key) }
        for (k, v) in environment { env[k] = v }
        cond.withLock { watchers[id] = onExit }
        try send(.orderedObject(keys: ["op", "id", "argv", "env", "cpus", "gpus", "timeout"], values: [
            "op": .string("launch"), "id": .string(id), "argv": .array(([executable] + arguments).map(JSONValue.string)),
            "env": .object(env.mapValues(JSONValue.string)), "cpus": .int(max(1, resources.cpus)), "gpus": .int(resources.gpus),
            "timeout": .number(placementTimeout.seconds),
        ]))
        guard let reply = wait(for: id, timeout: placementTimeout + .seconds(180)) else {
            cond.withLock { _ = watchers.removeValue(forKey: id) }
            throw EbbError(.unavailable, "Ray did not start engine core \(id) within \(placementTimeout + .seconds(180))")
        }
        guard reply["event"]?.stringValue == "launched" else {
            cond.withLock { _ = watchers.removeValue(forKey: id) }
            throw EbbError(.unavailable, reply["error"]?.stringValue ?? "Ray could not start engine core \(id)")
        }
        log("Ray: \(id) runs as pid \(reply["pid"]?.intValue ?? 0) under actor \(reply["actor_id"]?.stringValue ?? "?") on node \(reply["node_ip"]?.stringValue ?? "?")")
    }

    public func stop(id: String, grace: Duration) {
        cond.withLock { _ = watchers.removeValue(forKey: id) }
        guard (try? send(.object(["op": .string("stop"), "id": .string(id), "grace": .number(grace.seconds)]))) != nil else { return }
        _ = wait(for: id, timeout: grace + .seconds(40))
    }

    public func fence(id: String) {
        cond.withLock { _ = watchers.removeValue(forKey: id) }
        guard (try? send(.object(["op": .string("fence"), "id": .string(id)]))) != nil else { return }
        _ = wait(for: id, timeout: .seconds(20))
    }

    public func stopAll(grace: Duration) {
        cond.withLock { watchers = [:] }
        if (try? send(.object(["op": .string("stop_all"), "grace": .number(grace.seconds)]))) != nil {
            _ = wait(for: "*", timeout: grace + .seconds(40))
        }
        try? input.close()
        let end = ContinuousClock.now + .seconds(10)
        while helper.isRunning && ContinuousClock.now < end { Thread.sleep(forTimeInterval: 0.05) }
        if helper.isRunning { kill(helper.processIdentifier, SIGKILL) }
    }
}
