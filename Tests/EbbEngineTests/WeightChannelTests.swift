import EbbComm
import EbbCore
import EbbEngine
import EbbTensor
import Foundation
import Testing

/// The weight channel's host path (what CPU ranks and GPU ranks without NCCL use) and the
/// factory's choice of transport. The NCCL path runs on the GPU host (`selftest-cuda`,
/// `scripts/gpu-run.sh nccl`).
struct WeightChannelTests {
    @Test func hostChannelMovesTensorsBetweenRanksInOrder() throws {
        let hub = try InProcessHub(size: 2)
        let backend = CPUBackend(threads: 1)
        let a = HostWeightChannel(try hub.communicator(rank: 0), backend: backend)
        let b = HostWeightChannel(try hub.communicator(rank: 1), backend: backend)
        let first = (0..<12).map { Float($0) * 0.5 }, second = (0..<4).map { Float(-$0) }
        let x = try first.withUnsafeBytes { try backend.upload($0, sourceDType: .f32, shape: [3, 4], dtype: .f32) }
        let y = try second.withUnsafeBytes { try backend.upload($0, sourceDType: .f32, shape: [4], dtype: .f32) }
        let sender = Thread {
            try? a.send(x, to: 1)
            try? a.send(y, to: 1)
        }
        sender.start()
        let gotFirst = try backend.empty([3, 4], dtype: .f32), gotSecond = try backend.empty([4], dtype: .f32)
        try b.recv(into: gotFirst, from: 0, what: "first")
        try b.recv(into: gotSecond, from: 0, what: "second")
        try b.finish()
        #expect(backend.downloadFloats(gotFirst) == first)
        #expect(backend.downloadFloats(gotSecond) == second)
        #expect(a.transport == "host" && a.rank == 0 && b.size == 2)
    }

    @Test func aReceiveOfTheWrongSizeIsAClearError() throws {
        let hub = try InProcessHub(size: 2)
        let backend = CPUBackend(threads: 1)
        let a = HostWeightChannel(try hub.communicator(rank: 0), backend: backend)
        let b = HostWeightChannel(try hub.communicator(rank: 1), backend: backend)
        let x = try [Float](repeating: 1, count: 8).withUnsafeBytes { try backend.upload($0, sourceDType: .f32, shape: [8], dtype: .f32) }
        let sender = Thread { try? a.send(x, to: 1) }
        sender.start()
        let into = try backend.empty([6], dtype: .f32)
        let error = #expect(throws: EbbError.self) { try b.recv(into: into, from: 0, what: "expert 3 of layer 1") }
        #expect(error?.message.contains("expert 3 of layer 1 came with 8 values, expected 6") == true)
    }

    @Test func theFactoryPicksTheHostOnTheCPU() throws {
        let hub = try InProcessHub(size: 1)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ebb-wc-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try FileKeyValueStore(directory: dir)
        let channel = try DataPlane.weightChannel("weights", host: try hub.communicator(rank: 0), backend: CPUBackend(threads: 1),
                                                  store: store, timeout: .seconds(5))
        #expect(channel.transport == "host")
        #expect(channel.backend is CPUBackend)
        let exchange = try DataPlane.expertExchange(host: try hub.communicator(rank: 0), backend: CPUBackend(threads: 1),
                                                    store: store, timeout: .seconds(5))
        #expect(exchange.transport == "host")
    }
}
