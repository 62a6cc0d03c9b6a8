import EbbCore
import Foundation

/// The rendezvous store a Gloo communicator meets its peers through.
///
/// Values are written once per key. `get` and `wait` block until the key(s) exist or the
/// timeout passes (then they throw `EbbError(.io, …timed out…)`). Implementations must be
/// safe to call from any thread. The coordinator can serve one over its control plane; the
/// file-system and in-memory ones here are for tests and single-host runs.
public protocol KeyValueStore: Sendable {
    func set(_ key: String, _ value: [UInt8]) throws
    /// Waits until `key` exists (at most `timeout`), then returns its value.
    func get(_ key: String, timeout: Duration) throws -> [UInt8]
    /// Waits until every key exists (at most `timeout` in all).
    func wait(_ keys: [String], timeout: Duration) throws
}

extension KeyValueStore {
    public func wait(_ keys: [String], timeout: Duration) throws {
        let start = ContinuousClock.now
        for k in keys {
            let left = timeout - (ContinuousClock.now - start)
            _ = try get(k, timeout: left > .zero ? left : .milliseconds(1))
        }
    }
}

/// Prepends `prefix + "/"` to every key, so that several groups (e.g. generations) share
/// one store without colliding.
public struct PrefixStore: KeyValueStore {
    public let base: any KeyValueStore
    public let prefix: String

    public init(_ base: any KeyValueStore, prefix: String) {
        self.base = base
        self.prefix = prefix
    }

    private func full(_ key: String) -> String { "\(prefix)/\(key)" }

    public func set(_ key: String, _ value: [UInt8]) throws { try base.set(full(key), value) }
    public func get(_ key: String, timeout: Duration) throws -> [UInt8] { try base.get(full(key), timeout: timeout) }
    public func wait(_ keys: [String], timeout: Duration) throws { try base.wait(keys.map(full), timeout: timeout) }
}

/// A store in this process's memory (threads of one process).
public final class InMemoryKeyValueStore: KeyValueStore, @unchecked Sendable {
    private let cond = NSCondition()
    private var values: [String: [UInt8]] = [:]

    public init() {}

    public func set(_ key: String, _ value: [UInt8]) throws {
        cond.lock()
        values[key] = value
        cond.broadcast()
        cond.unlock()
    }

    public func get(_ key: String, timeout: Duration) throws -> [UInt8] {
        let end = Date(timeIntervalSinceNow: timeout.seconds)
        cond.lock()
        defer { cond.unlock() }
        while true {
            if let v = values[key] { return v }
            if !cond.wait(until: end), values[key] == nil {
                throw EbbError(.io, "key-value store: timed out after \(timeout) waiting for key '\(key)'")
            }
        }
    }

    /// All keys (for tests and debugging).
    public var keys: [String] {
        cond.lock()
        defer { cond.unlock() }
        return Array(values.keys)
    }
}

/// A store in a directory shared by the processes of one host (or a shared file system),
/// like Gloo's `FileStore`: one file per key, written to a temporary name and renamed into
/// place so readers never see a partial value; readers poll.
public struct FileKeyValueStore: KeyValueStore {
    public let directory: String

    /// Creates `directory` if needed.
    public init(directory: String) throws {
        self.directory = directory
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw EbbError(.io, "key-value store: cannot create directory \(directory): \(error)")
        }
    }

    /// Keys may contain any characters; file names get a safe encoding.
    private func path(_ key: String) -> String {
        var name = ""
        for b in key.utf8 {
            let c = Character(UnicodeScalar(b))
            if c.isASCII && (c.isLetter || c.isNumber || c == "-" || c == "_" || c == ".") && !(name.isEmpty && c == ".") {
                name.append(c)
            } else {
                name += String(format: "%%%02X", b)
            }
        }
        return directory + "/" + name
    }

    public func set(_ key: String, _ value: [UInt8]) throws {
        let final = path(key)
        let tmp = final + ".tmp-\(ProcessInfo.processInfo.processIdentifier)-\(UInt64.random(in: 0...UInt64.max))"
        guard FileManager.default.createFile(atPath: tmp, contents: Data(value)) else {
            throw EbbError(.io, "key-value store: cannot write \(tmp)")
        }
        guard rename(tmp, final) == 0 else {
            let e = errno
            _ = unlink(tmp)
            throw EbbError(.io, "key-value store: cannot rename \(tmp) to \(final): errno \(e)")
        }
    }

    public func get(_ key: String, timeout: Duration) throws -> [UInt8] {
        let p = path(key)
        let clock = ContinuousClock()
        let end = clock.now + timeout
        var pause = Duration.microseconds(200)
        while true {
            if let d = FileManager.default.contents(atPath: p) { return [UInt8](d) }
            if clock.now >= end {
                throw EbbError(.io, "key-value store: timed out after \(timeout) waiting for key '\(key)' in \(directory)")
            }
            Thread.sleep(forTimeInterval: pause.seconds)
            pause = min(pause * 2, .milliseconds(10))
        }
    }
}
