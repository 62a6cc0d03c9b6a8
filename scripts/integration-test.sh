#!/usr/bin/env bash
# Acceptance tests of `ebb serve` as a real process, driven by the official OpenAI Python
# client (tests/integration); installs the client, pytest and Ray from PyPI when missing. Needs a built binary: EBB_BIN (default .build/debug/ebb,
# from `swift build --product ebb`) and the fixtures in EBB_FIXTURES (default
# ../shared/fixtures). Extra arguments go to pytest, e.g. -k batch_invariance.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c "import openai, pytest" >/dev/null 2>&1; then
  echo "installing the Python test client: openai pytest"
  "$PYTHON" -m pip install --quiet openai pytest
fi
# Ray, for the tests of `ebb serve --launcher ray` on a local Ray cluster (tests/integration/test_ray.py).
if ! "$PYTHON" -c "import ray, ray.util.state" >/dev/null 2>&1; then
  echo "installing Ray for the --launcher ray tests"
  "$PYTHON" -m pip install --quiet "ray[default]"
fi
export EBB_BIN="${EBB_BIN:-.build/debug/ebb}"
case "$EBB_BIN" in /*) ;; *) EBB_BIN="$PWD/$EBB_BIN" ;; esac
if [ ! -x "$EBB_BIN" ]; then
  echo "error: no ebb binary at $EBB_BIN; build it with 'swift build --product ebb' or set EBB_BIN" >&2
  exit 1
fi
export EBB_FIXTURES="${EBB_FIXTURES:-../shared/fixtures}"
exec "$PYTHON" -m pytest -q tests/integration "$@"
