#!/usr/bin/env bash
# Installs what the tests need, builds, and runs the whole test suite.
# Fixtures are read from $EBB_FIXTURES (default ../shared/fixtures).
set -euo pipefail
cd "$(dirname "$0")/.."
EBB_NEED_PYTHON_CLIENT=1 EBB_NEED_BROWSER=1 bash scripts/install-deps.sh
swift build --build-tests
swift test --skip-build "$@"
# The server as a real process, driven by the official OpenAI Python client.
bash scripts/integration-test.sh
