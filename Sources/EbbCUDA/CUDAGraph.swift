import CEbbCUDA
import EbbCore
import EbbTensor

/// A captured sequence of the backend's ops, replayed with one launch. Tensors allocated
/// during the capture come from a private memory pool the graph keeps until it is
/// released; inputs must live at fixed addresses (write new inputs into the same tensors
/// before each replay).
public final class CUDAGraph: ReplayableGraph, @unchecked Sendable {
    let backend: CUDABackend
    let graph: EbbCUgraph
    let exec: EbbCUgraphExec
    let pool: Int

    init(backend: CUDABackend, graph: EbbCUgraph, exec: EbbCUgraphExec, pool: Int) {
        self.backend = backend
        self.graph = graph
        self.exec = exec
        self.pool = pool
    }

    /// Enqueues one replay on the backend's stream.
    public func launch() throws {
        try backend.bind()
        let run = try CUDAStatus.fn(backend.api.pointee.cuGraphLaunch, "cuGraphLaunch")
        try CUDAStatus.check(backend.api, run(exec, backend.stream), "cuGraphLaunch")
    }

    deinit {
        _ = backend.api.pointee.cuStreamSynchronize?(backend.stream)
        _ = backend.api.pointee.cuGraphExecDestroy?(exec)
        _ = backend.api.pointee.cuGraphDestroy?(graph)
        backend.allocator.retirePool(pool)
    }
}

extension CUDABackend {
    /// Captures the ops `body` enqueues (no host reads inside) into a graph.
    public func captureGraph(_ body: () throws -> Void) throws -> CUDAGraph {
        try synchronizeChecked()
        let a = api.pointee
        let begin = try CUDAStatus.fn(a.cuStreamBeginCapture, "cuStreamBeginCapture")
        let end = try CUDAStatus.fn(a.cuStreamEndCapture, "cuStreamEndCapture")
        let instantiate = try CUDAStatus.fn(a.cuGraphInstantiateWithFlags, "cuGraphInstantiateWithFlags")
        let pool = allocator.beginPrivatePool()
        do {
            try CUDAStatus.check(api, begin(stream, Int32(EBB_CU_STREAM_CAPTURE_MODE_RELAXED)), "cuStreamBeginCapture")
        } catch {
            allocator.endPrivatePool()
            allocator.retirePool(pool)
            throw error
        }
        var bodyError: (any Error)?
        do { try body() } catch { bodyError = error }
        var graph: EbbCUgraph?
        let endCode = end(stream, &graph)
        allocator.endPrivatePool()
        do {
            if let bodyError { throw bodyError }
            try checkErrors()
            try CUDAStatus.check(api, endCode, "cuStreamEndCapture")
            guard let graph else { throw EbbError(.internal, "cuStreamEndCapture returned no graph") }
            var exec: EbbCUgraphExec?
            try CUDAStatus.check(api, instantiate(&exec, graph, 0), "cuGraphInstantiateWithFlags")
            guard let exec else { throw EbbError(.internal, "cuGraphInstantiate returned nothing") }
            return CUDAGraph(backend: self, graph: graph, exec: exec, pool: pool)
        } catch {
            if let graph { _ = a.cuGraphDestroy?(graph) }
            allocator.retirePool(pool)
            throw error
        }
    }

    public var supportsGraphs: Bool { true }

    public func captureReplayableGraph(_ body: @escaping () throws -> Void) throws -> (any ReplayableGraph)? {
        try captureGraph(body)
    }

    /// Device time of the work `body` enqueues, in milliseconds (CUDA events).
    public func timeMilliseconds(_ body: () throws -> Void) throws -> Double {
        try bind()
        let a = api.pointee
        let create = try CUDAStatus.fn(a.cuEventCreate, "cuEventCreate")
        let record = try CUDAStatus.fn(a.cuEventRecord, "cuEventRecord")
        let wait = try CUDAStatus.fn(a.cuEventSynchronize, "cuEventSynchronize")
        let elapsed = try CUDAStatus.fn(a.cuEventElapsedTime, "cuEventElapsedTime")
        var start: EbbCUevent?, stop: EbbCUevent?
        try CUDAStatus.check(api, create(&start, UInt32(EBB_CU_EVENT_DEFAULT)), "cuEventCreate")
        try CUDAStatus.check(api, create(&stop, UInt32(EBB_CU_EVENT_DEFAULT)), "cuEventCreate")
        defer {
            _ = a.cuEventDestroy?(start)
            _ = a.cuEventDestroy?(stop)
        }
        try CUDAStatus.check(api, record(start, stream), "cuEventRecord")
        try body()
        try CUDAStatus.check(api, record(stop, stream), "cuEventRecord")
        try CUDAStatus.check(api, wait(stop), "cuEventSynchronize")
        try checkErrors()
        var ms: Float = 0
        try CUDAStatus.check(api, elapsed(&ms, start, stop), "cuEventElapsedTime")
        return Double(ms)
    }
}
