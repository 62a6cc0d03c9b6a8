#!/usr/bin/env bash
# Installs the system packages Ebb needs when they are missing (Debian/Ubuntu).
set -euo pipefail
need=()
dpkg -s libopenblas-dev >/dev/null 2>&1 || need+=(libopenblas-dev)
# Gloo (CPU data plane, EbbComm/CEbbGloo); without it the Gloo communicator reports itself unavailable.
dpkg -s libgloo-dev >/dev/null 2>&1 || need+=(libgloo-dev)
# Headless Chromium renders the dashboard in the integration tests (tests/integration/test_dashboard.py).
if [ "${EBB_NEED_BROWSER:-0}" = 1 ]; then
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
fi
if [ "${EBB_NEED_PYTHON_CLIENT:-0}" = 1 ]; then
  python3 -c "import openai" >/dev/null 2>&1 || pip_need=1
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi
if [ "${pip_need:-0}" = 1 ]; then
  python3 -m pip install -q openai
fi
