#!/usr/bin/env bash
# Regenerates Sources/EbbControl/Generated from Protos/ with protoc, swift-protobuf's
# protoc-gen-swift and grpc-swift-protobuf's protoc-gen-grpc-swift-2. The generated files
# are committed, so building Ebb never needs this; run it after editing a .proto.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v protoc >/dev/null || apt-get install -y protobuf-compiler
tools=.build-protoc
if [ ! -x "$tools/release/protoc-gen-swift" ] || [ ! -x "$tools/release/protoc-gen-grpc-swift-2" ]; then
  mkdir -p "$tools/pkg/Sources/Empty"
  cat > "$tools/pkg/Package.swift" <<'PKG'
// swift-tools-version: 6.1
import PackageDescription
let package = Package(
    name: "protoc-plugins",
    dependencies: [
        .package(url: "https://github.com/grpc/grpc-swift-protobuf", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
    ],
    targets: [.target(name: "Empty")]
)
PKG
  echo "" > "$tools/pkg/Sources/Empty/empty.swift"
  for product in protoc-gen-swift protoc-gen-grpc-swift-2; do
    swift build -c release --package-path "$tools/pkg" --scratch-path "$tools" --product "$product"
  done
fi
out=Sources/EbbControl/Generated
mkdir -p "$out"
protoc --proto_path=Protos \
  --plugin=protoc-gen-swift="$tools/release/protoc-gen-swift" \
  --plugin=protoc-gen-grpc-swift="$tools/release/protoc-gen-grpc-swift-2" \
  --swift_opt=Visibility=Public --swift_out="$out" \
  --grpc-swift_opt=Visibility=Public,Client=true,Server=true --grpc-swift_out="$out" \
  ebb/control/v1/control.proto
# The generated gRPC code uses grpc-swift-protobuf's coders; Ebb has its own in EbbControl
# (see Sources/EbbControl/ProtobufCoding.swift), so it needs no GRPCProtobuf module.
for f in $(find "$out" -name '*.grpc.swift'); do
  sed -i -e '/^import GRPCProtobuf$/d' -e 's/GRPCProtobuf\.Protobuf/EbbControl.Protobuf/g' "$f"
done
echo "generated into $out:"; find "$out" -name '*.swift' | sort
