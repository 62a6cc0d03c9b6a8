import CEbbCUDA
import EbbCore
import Synchronization

/// Per-kernel device time, for finding where a forward pass spends it: while profiling,
/// every launch (and every cuBLAS call) is bracketed by two CUDA events. Eager runs only
/// (events cannot be read inside a graph capture); adds a little launch overhead.
final class KernelProfiler: @unchecked Sendable {
    struct Span {
        let name: String
        let start: EbbCUevent
        let stop: EbbCUevent
    }
    var spans: [Span] = []
}

public struct KernelTime: Sendable {
    public let name: String
    public let milliseconds: Double
    public let launches: Int
}

extension CUDABackend {
    /// Starts recording per-kernel times (clears earlier ones).
    public func startProfiling() {
        profiler.withLock { $0 = KernelProfiler() }
    }

    /// Stops recording; waits for the stream and returns the time per kernel name,
    /// largest first.
    public func stopProfiling() throws -> [KernelTime] {
        guard let p = profiler.withLock({ p -> KernelProfiler? in defer { p = nil }; return p }) else { return [] }
        try synchronizeChecked()
        let elapsed = try CUDAStatus.fn(api.pointee.cuEventElapsedTime, "cuEventElapsedTime")
        var totals: [String: (Double, Int)] = [:]
        for s in p.spans {
            var ms: Float = 0
            try CUDAStatus.check(api, elapsed(&ms, s.start, s.stop), "cuEventElapsedTime")
            totals[s.name, default: (0, 0)].0 += Double(ms)
            totals[s.name, default: (0, 0)].1 += 1
            _ = api.pointee.cuEventDestroy?(s.start)
            _ = api.pointee.cuEventDestroy?(s.stop)
        }
        return totals.map { KernelTime(name: $0.key, milliseconds: $0.value.0, launches: $0.value.1) }
            .sorted { $0.milliseconds > $1.milliseconds }
    }

    /// Runs `body` (which enqueues work) between two events when profiling.
    @inline(__always)
    func profiled(_ name: @autoclosure () -> String, _ body: () throws -> Void) throws {
        guard let p = profiler.withLock({ $0 }) else { return try body() }
        let create = try CUDAStatus.fn(api.pointee.cuEventCreate, "cuEventCreate")
        let record = try CUDAStatus.fn(api.pointee.cuEventRecord, "cuEventRecord")
        var start: EbbCUevent?, stop: EbbCUevent?
        try CUDAStatus.check(api, create(&start, 0), "cuEventCreate")
        try CUDAStatus.check(api, create(&stop, 0), "cuEventCreate")
        guard let start, let stop else { return try body() }
        try CUDAStatus.check(api, record(start, stream), "cuEventRecord")
        try body()
        try CUDAStatus.check(api, record(stop, stream), "cuEventRecord")
        let span = KernelProfiler.Span(name: name(), start: start, stop: stop)
        profiler.withLock { _ in p.spans.append(span) }
    }
}
