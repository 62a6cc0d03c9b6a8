// swift-tools-version: 6.1
import Foundation
import PackageDescription

// Debian's libgloo-dev provides the CPU data plane; without it CEbbGloo builds stubs that
// report the Gloo communicator unavailable.
let hasGloo = FileManager.default.fileExists(atPath: "/usr/include/gloo/rendezvous/context.h")

// Swift 6 language mode (strict concurrency) on every target.
let strict: [SwiftSetting] = [.swiftLanguageMode(.v6)]

let package = Package(
    name: "Ebb",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "ebb", targets: ["ebb"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.2"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
    ],
    targets: [
        // C shims and system libraries
        .systemLibrary(name: "CEbbBLAS", path: "Sources/CEbbBLAS"),
        .target(name: "CEbbGloo",
                cxxSettings: [.headerSearchPath("compat")],
                linkerSettings: hasGloo ? [.linkedLibrary("gloo"), .linkedLibrary("stdc++")] : [.linkedLibrary("stdc++")]),
        .target(name: "CEbbCUDA", linkerSettings: [.linkedLibrary("dl")]),

        // Library targets, lowest first; imports only point up this list.
        .target(name: "EbbCore", swiftSettings: strict),
        .target(name: "EbbTensor", dependencies: ["CEbbBLAS"], swiftSettings: strict),
        .target(name: "EbbCUDA", dependencies: ["CEbbCUDA", "EbbCore", "EbbTensor"], swiftSettings: strict),
        .target(name: "EbbJinja", dependencies: ["EbbCore"], swiftSettings: strict),
        .target(name: "EbbTokenizer", dependencies: ["EbbCore", "EbbJinja"], swiftSettings: strict),
        .target(name: "EbbCheckpoint", dependencies: ["EbbCore", "EbbTensor"], swiftSettings: strict),
        .target(name: "EbbModel", dependencies: ["EbbCore", "EbbTensor", "EbbCheckpoint"], swiftSettings: strict),
        .target(name: "EbbSampling", dependencies: ["EbbCore"], swiftSettings: strict),
        .target(name: "EbbEPLB", dependencies: ["EbbCore"], swiftSettings: strict),
        .target(name: "EbbComm", dependencies: ["EbbCore", "CEbbGloo", "CEbbCUDA", "EbbTensor", "EbbCUDA"], swiftSettings: strict),
        .target(name: "EbbEngine", dependencies: ["EbbCore", "EbbTensor", "EbbCUDA", "EbbModel", "EbbSampling", "EbbComm", "EbbEPLB"], swiftSettings: strict),
        .target(
            name: "EbbControl",
            dependencies: [
                "EbbCore",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            exclude: ["README.md"],
            swiftSettings: strict),
        .target(
            name: "EbbCluster",
            dependencies: ["EbbCore", "EbbTensor", "EbbModel", "EbbSampling", "EbbComm", "EbbEPLB", "EbbEngine", "EbbControl"],
            swiftSettings: strict),
        .target(
            name: "EbbServer",
            dependencies: [
                "EbbCore", "EbbEngine", "EbbTokenizer", "EbbModel", "EbbSampling",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strict),
        .target(
            name: "EbbBench",
            dependencies: [
                "EbbCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strict),
        .executableTarget(
            name: "ebb",
            dependencies: [
                "EbbCore", "EbbTensor", "EbbTokenizer", "EbbCheckpoint", "EbbModel", "EbbSampling", "EbbEngine", "EbbServer", "EbbBench",
                "EbbCluster", "EbbComm", "EbbEPLB", "EbbCUDA",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict),

        // Tests
        .target(name: "EbbTestSupport", path: "Tests/EbbTestSupport", swiftSettings: strict),
        .testTarget(name: "EbbTensorTests", dependencies: ["EbbTensor", "EbbTestSupport"], swiftSettings: strict),
        .testTarget(name: "EbbTokenizerTests", dependencies: ["EbbTokenizer", "EbbTestSupport"], swiftSettings: strict),
        .testTarget(name: "EbbChatTemplateTests", dependencies: ["EbbTokenizer", "EbbJinja", "EbbTestSupport"], swiftSettings: strict),
        .testTarget(name: "EbbCheckpointTests", dependencies: ["EbbCheckpoint", "EbbTensor", "EbbTestSupport"], swiftSettings: strict),
        .testTarget(name: "EbbModelTests", dependencies: ["EbbModel", "EbbTensor", "EbbCheckpoint", "EbbCore", "EbbTestSupport"], swiftSettings: strict),
        .testTarget(name: "EbbSamplingTests", dependencies: ["EbbSampling", "EbbTestSupport"], swiftSettings: strict),
        .testTarget(name: "EbbCommTests", dependencies: ["EbbComm", "EbbCore"], swiftSettings: strict),
        .testTarget(name: "EbbEPLBTests", dependencies: ["EbbEPLB", "EbbCore"], swiftSettings: strict),
        .testTarget(name: "EbbBenchTests", dependencies: ["EbbBench"], swiftSettings: strict),
        .testTarget(name: "EbbServerTests", dependencies: ["EbbServer", "EbbEngine", "EbbModel", "EbbTokenizer", "EbbTestSupport", "EbbCore", .product(name: "HummingbirdTesting", package: "hummingbird")], swiftSettings: strict),
        .testTarget(name: "EbbClusterTests", dependencies: ["EbbCluster", "EbbControl", "EbbEngine", "EbbModel", "EbbComm", "EbbCore", "EbbTensor", "EbbTestSupport"], swiftSettings: strict),
        .testTarget(name: "EbbCUDATests", dependencies: ["EbbCUDA", "CEbbCUDA", "EbbTensor", "EbbModel", "EbbCheckpoint", "EbbCore", "EbbTestSupport"], swiftSettings: strict),
        .testTarget(name: "EbbEngineTests", dependencies: ["EbbEngine", "EbbModel", "EbbTensor", "EbbSampling", "EbbCore", "EbbComm", "EbbEPLB", "EbbTestSupport"], swiftSettings: strict),
    ],
    cxxLanguageStandard: .cxx17
)
