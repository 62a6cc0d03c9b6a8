import EbbCheckpoint
import EbbCore
import Foundation

/// Typed access to a parsed `config.json` whose errors name the file and the key.
struct ConfigReader {
    let file: String
    let values: [String: JSONValue]

    init(file: String, data: Data) throws {
        self.file = file
        let document: JSONValue
        do {
            document = try JSONValue.parse(data)
        } catch let error as EbbError {
            throw CheckpointError.invalidConfig(file: file, key: "<document>", reason: error.message)
        }
        guard let dict = document.objectValue else {
            throw CheckpointError.invalidConfig(file: file, key: "<document>", reason: "top level is \(document.kindDescription), expected an object")
        }
        self.values = dict
    }

    init(file: String, values: [String: JSONValue]) {
        self.file = file
        self.values = values
    }

    func has(_ key: String) -> Bool {
        guard let v = values[key] else { return false }
        return !v.isNull
    }

    private func invalid(_ key: String, _ expected: String) -> CheckpointError {
        .invalidConfig(file: file, key: key, reason: "expected \(expected), found \(values[key]?.kindDescription ?? "nothing")")
    }

    func int(_ key: String) throws -> Int {
        guard has(key) else { throw CheckpointError.missingConfigKey(file: file, key: key) }
        guard let v = values[key]?.intValue else { throw invalid(key, "an integer") }
        return v
    }

    func int(_ key: String, default value: Int) throws -> Int {
        has(key) ? try int(key) : value
    }

    func optionalInt(_ key: String) throws -> Int? {
        has(key) ? try int(key) : nil
    }

    /// The first of `keys` that is present.
    func int(anyOf keys: [String]) throws -> Int {
        for key in keys where has(key) { return try int(key) }
        throw CheckpointError.missingConfigKey(file: file, key: keys.joined(separator: "' or '"))
    }

    /// A positive integer (sizes, counts), from the first of `keys` that is present.
    func positiveInt(_ keys: String...) throws -> Int {
        let v = try int(anyOf: keys)
        let key = keys.first(where: has) ?? keys[0]
        guard v > 0 else { throw CheckpointError.invalidConfig(file: file, key: key, reason: "must be positive, found \(v)") }
        guard v <= 1 << 31 else { throw CheckpointError.invalidConfig(file: file, key: key, reason: "too large: \(v)") }
        return v
    }

    func double(_ key: String) throws -> Double {
        guard has(key) else { throw CheckpointError.missingConfigKey(file: file, key: key) }
        guard let v = values[key]?.doubleValue, v.isFinite else { throw invalid(key, "a number") }
        return v
    }

    func double(_ key: String, default value: Double) throws -> Double {
        has(key) ? try double(key) : value
    }

    func optionalDouble(_ key: String) throws -> Double? {
        has(key) ? try double(key) : nil
    }

    func bool(_ key: String, default value: Bool) throws -> Bool {
        guard has(key) else { return value }
        guard let v = values[key]?.boolValue else { throw invalid(key, "true or false") }
        return v
    }

    func string(_ key: String) throws -> String? {
        guard has(key) else { return nil }
        guard let v = values[key]?.stringValue else { throw invalid(key, "a string") }
        return v
    }

    /// An integer or a list of integers (e.g. `eos_token_id`).
    func intList(_ key: String) throws -> [Int] {
        guard has(key), let value = values[key] else { return [] }
        if let one = value.intValue { return [one] }
        guard let list = value.arrayValue else { throw invalid(key, "a list of integers") }
        return try list.map { item in
            guard let v = item.intValue else { throw invalid(key, "a list of integers") }
            return v
        }
    }

    func object(_ key: String) throws -> ConfigReader? {
        guard has(key), let value = values[key] else { return nil }
        guard let dict = value.objectValue else { throw invalid(key, "an object") }
        return ConfigReader(file: file, values: dict)
    }
}
