"""Starts `ebb serve` as a real process for the integration tests.

Environment:
  EBB_BIN       the ebb binary (default: <repo>/.build/debug/ebb). Missing → every test fails.
  EBB_FIXTURES  the shared test fixtures (default: <repo>/../shared/fixtures). Missing →
                tests skip, unless CI=true, where they fail.
  EBB_STARTUP_TIMEOUT  seconds to wait for /health (default 120).
  EBB_SERVE_EXTRA_ARGS flags added to every `ebb serve`, e.g. "--device cuda --dtype f32".
"""

from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
# Every HTTP call of the suite uses a timeout; this is the generous default for
# generation requests in a debug build on a busy 2-core machine.
HTTP_TIMEOUT = 60.0
# A hard bound per test: if a test hangs past this, the tracebacks are dumped and the
# run ends (servers die with it: they get SIGTERM when pytest exits, see _preexec).
TEST_HARD_TIMEOUT = float(os.environ.get("EBB_TEST_HARD_TIMEOUT", "420"))
# Flags added to every `ebb serve` (e.g. "--device cuda --dtype f32" to run the suite on a GPU).
EXTRA_SERVE_ARGS = os.environ.get("EBB_SERVE_EXTRA_ARGS", "").split()
F32_FIXTURES = ["qwen3-moe-tiny-f32", "mixtral-tiny-f32", "deepseek-v3-tiny-f32"]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def ebb_bin_path() -> Path:
    value = os.environ.get("EBB_BIN")
    if value:
        path = Path(value)
        return path if path.is_absolute() else (Path.cwd() / path)
    return REPO_ROOT / ".build" / "debug" / "ebb"


def fixtures_root() -> Path:
    value = os.environ.get("EBB_FIXTURES")
    if value:
        path = Path(value)
        return path if path.is_absolute() else (Path.cwd() / path)
    return REPO_ROOT.parent / "shared" / "fixtures"


def require_fixture(name: str) -> Path:
    """The fixture directory `name`; skips (fails under CI=true) when it is missing."""
    path = fixtures_root() / name
    if not (path / "config.json").is_file() or not (path / "reference.json").is_file():
        message = (f"fixture {name} not found at {path} (set EBB_FIXTURES to the shared fixtures "
                   f"directory)")
        if in_ci():
            pytest.fail(message + "; CI=true, so a missing fixture is a failure", pytrace=False)
        pytest.skip(message)
    return path


def load_reference(fixture_dir: Path) -> dict:
    with open(fixture_dir / "reference.json") as f:
        return json.load(f)


def load_config(fixture_dir: Path) -> dict:
    with open(fixture_dir / "config.json") as f:
        return json.load(f)


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _preexec() -> None:
    # Linux: the server gets SIGTERM if the pytest process dies, so no server outlives a run.
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class EbbServer:
    """One `ebb serve` process on 127.0.0.1 and a free port."""

    def __init__(self, binary: Path, model: str, flags: list[str], log_path: Path):
        self.binary = binary
        self.model = model
        self.flags = list(flags)
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.port = 0

    # Lifecycle ---------------------------------------------------------------

    def start(self, timeout: float | None = None) -> "EbbServer":
        timeout = timeout or float(os.environ.get("EBB_STARTUP_TIMEOUT", "120"))
        for attempt in range(3):
            self.port = free_port()
            cmd = [str(self.binary), "serve", "--model", self.model, "--host", HOST,
                   "--port", str(self.port), *self.flags, *EXTRA_SERVE_ARGS]
            self._log = open(self.log_path, "ab")
            self._log.write(f"$ {' '.join(cmd)}\n".encode())
            self._log.flush()
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log,
                                         stderr=subprocess.STDOUT, preexec_fn=_preexec)
            self.command = cmd
            status = self._wait_ready(timeout)
            if status == "ready":
                return self
            if status == "port-in-use" and attempt < 2:
                continue
            self.stop()
            pytest.fail(f"`ebb serve` did not become ready ({status}).\ncommand: {' '.join(cmd)}\n"
                        f"log tail:\n{self.log_tail()}", pytrace=False)
        raise AssertionError("unreachable")

    def _wait_ready(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                if "address already in use" in self.log_text().lower():
                    return "port-in-use"
                return f"the process exited with status {code}"
            try:
                if self.request("GET", "/health", timeout=2.0).status == 200:
                    return "ready"
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.2)
        return f"no 200 from /health within {timeout:.0f} s"

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        with contextlib.suppress(Exception):
            self._log.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def assert_alive(self) -> None:
        assert self.alive(), (f"the ebb server exited (status {self.proc.returncode}); "
                              f"log tail:\n{self.log_tail()}")

    # Helpers ------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def kv_blocks(self) -> int | None:
        m = re.search(r"KV cache: (\d+) blocks", self.log_text())
        return int(m.group(1)) if m else None

    def client(self, timeout: float = HTTP_TIMEOUT):
        from openai import OpenAI
        return OpenAI(base_url=self.url("/v1"), api_key="EMPTY", timeout=timeout, max_retries=0)

    def async_client(self, timeout: float = HTTP_TIMEOUT):
        from openai import AsyncOpenAI
        return AsyncOpenAI(base_url=self.url("/v1"), api_key="EMPTY", timeout=timeout, max_retries=0)

    def request(self, method: str, path: str, body=None, timeout: float = HTTP_TIMEOUT,
                headers: dict[str, str] | None = None) -> "HTTPResult":
        """One HTTP request on a fresh connection. `body`: bytes/str sent as is, anything
        else as JSON."""
        return http_request(HOST, self.port, method, path, body, timeout, headers)

    def post_json(self, path: str, obj, timeout: float = HTTP_TIMEOUT) -> dict:
        r = self.request("POST", path, obj, timeout)
        assert r.status == 200, f"POST {path} answered {r.status}: {r.text[:500]}"
        return r.json()

    def metrics_text(self) -> str:
        r = self.request("GET", "/metrics", timeout=10.0)
        assert r.status == 200, f"/metrics answered {r.status}: {r.text[:500]}"
        return r.text

    def metrics(self) -> dict[str, float]:
        """`/metrics` parsed into {"name{labels}": value}."""
        return parse_prometheus(self.metrics_text())


class HTTPResult:
    def __init__(self, status: int, headers: dict[str, str], data: bytes):
        self.status = status
        self.headers = headers
        self.data = data

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")

    def json(self):
        return json.loads(self.data)


def http_request(host: str, port: int, method: str, path: str, body=None, timeout: float = HTTP_TIMEOUT,
                 headers: dict[str, str] | None = None) -> HTTPResult:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        hdrs = {"Connection": "close"}
        data = None
        if body is not None:
            if isinstance(body, (bytes, bytearray)):
                data = bytes(body)
            elif isinstance(body, str):
                data = body.encode()
            else:
                data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        payload = resp.read()
        return HTTPResult(resp.status, {k.lower(): v for k, v in resp.getheaders()}, payload)
    finally:
        conn.close()


def parse_prometheus(text: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^(\S+?(?:\{.*\})?)\s+(\S+)(?:\s+\d+)?$", line)
        assert m, f"unparseable Prometheus line: {line!r}"
        values[m.group(1)] = float(m.group(2))
    return values


def metric_sum(metrics: dict[str, float], name: str) -> float:
    """Sum of a metric over all label sets (0 when absent)."""
    total = 0.0
    for key, value in metrics.items():
        if key == name or key.startswith(name + "{"):
            total += value
    return total


# Fixtures -------------------------------------------------------------------------------

def pytest_configure(config):
    config.addinivalue_line("markers", "slow: longer integration tests")


@pytest.fixture(autouse=True)
def _hard_timeout():
    faulthandler.dump_traceback_later(TEST_HARD_TIMEOUT, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture(scope="session")
def ebb_bin() -> Path:
    path = ebb_bin_path()
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(f"ebb binary not found or not executable at {path}. Build it with "
                    f"`swift build --product ebb` or point EBB_BIN at it.", pytrace=False)
    return path


@pytest.fixture(scope="session")
def start_server(ebb_bin, tmp_path_factory):
    """`start_server(fixture_name_or_model, *flags)` → a ready EbbServer, stopped at the end
    of the session (tests that want a shorter life call `.stop()` themselves)."""
    servers: list[EbbServer] = []
    logs = tmp_path_factory.mktemp("ebb-logs")

    def start(model: str, *flags: str) -> EbbServer:
        if not model.startswith("builtin:") and "/" not in model:
            model = str(require_fixture(model))
        tag = re.sub(r"[^A-Za-z0-9]+", "-", f"{Path(model).name}-{'-'.join(flags)}").strip("-")[:120]
        server = EbbServer(ebb_bin, model, list(flags), logs / f"{len(servers):02d}-{tag}.log")
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


@contextlib.contextmanager
def running_server(start_server, model: str, *flags: str):
    server = start_server(model, *flags)
    try:
        yield server
    finally:
        server.stop()
