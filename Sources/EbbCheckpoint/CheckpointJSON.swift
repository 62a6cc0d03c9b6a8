import EbbCore

/// Checkpoint headers and index files are read with EbbCore's strict parser, as written
/// (ordered members, exact integers).
typealias JSONValue = JSONNode
