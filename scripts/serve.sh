#!/usr/bin/env bash
# Installs what Ebb needs, builds it in release mode, and serves the embedded default
# model (or whatever arguments you pass to `ebb serve`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
swift build -c release --product ebb
exec .build/release/ebb serve "$@"
