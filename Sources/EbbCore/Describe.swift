/// An error as one line for a person: an `EbbError`'s message, else the error's description.
public func describe(_ error: any Error) -> String {
    if let e = error as? EbbError { return e.message }
    return "\(error)"
}

extension Duration {
    /// The duration in seconds, as a Double.
    public var seconds: Double {
        let c = components
        return Double(c.seconds) + Double(c.attoseconds) * 1e-18
    }
}
