// swift-tools-version: 6.1
import PackageDescription

let strict: [SwiftSetting] = [.swiftLanguageMode(.v6)]

let package = Package(
    name: "Ebb",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "ebb", targets: ["ebb"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        .systemLibrary(name: "CEbbBLAS", path: "Sources/CEbbBLAS"),
        .target(name: "EbbCore", swiftSettings: strict),
        .target(name: "EbbTensor", dependencies: ["CEbbBLAS"], swiftSettings: strict),
        .target(name: "EbbTokenizer", dependencies: ["EbbCore"], swiftSettings: strict),
        .target(name: "EbbModel", dependencies: ["EbbCore", "EbbTensor"], swiftSettings: strict),
        .executableTarget(
            name: "ebb",
            dependencies: [
                "EbbCore", "EbbTensor", "EbbTokenizer", "EbbModel",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict),
        .target(name: "EbbTestSupport", path: "Tests/EbbTestSupport", swiftSettings: strict),
        .testTarget(name: "EbbTensorTests", dependencies: ["EbbTensor", "EbbTestSupport"], swiftSettings: strict),
        .testTarget(name: "EbbTokenizerTests", dependencies: ["EbbTokenizer", "EbbTestSupport"], swiftSettings: strict),
        .testTarget(name: "EbbModelTests", dependencies: ["EbbModel", "EbbTensor", "EbbTestSupport"], swiftSettings: strict),
    ]
)
