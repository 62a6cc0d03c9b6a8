"""The control plane only our ranks can use (issue 15): every deployment has a secret its
engine cores get in their environment; an engine core (or any process) that connects to the
coordinator's control plane or rendezvous store without it, or with a wrong one, is refused
and the deployment is untouched. The secret never appears on an engine core's command line."""

from __future__ import annotations

import os
import re
import subprocess

from conftest import require_fixture, running_server
from test_elastic import status

FIXTURE = "qwen3-moe-tiny-f32"
FLAGS = ["--data-parallel-size", "2", "--enable-expert-parallel", "--enable-elastic-ep", "--kv-cache-memory", "16MiB"]


def control_port(server) -> int:
    m = re.search(r"control plane listening on 127\.0\.0\.1:(\d+)", server.log_text())
    assert m, server.log_tail(20)
    return int(m.group(1))


def intruder(ebb_bin, model, port: int, secret: str | None) -> subprocess.CompletedProcess:
    """An engine core of this deployment's shape that tries to join as a third rank."""
    env = {k: v for k, v in os.environ.items() if k != "EBB_CLUSTER_SECRET"}
    if secret is not None:
        env["EBB_CLUSTER_SECRET"] = secret
    cmd = [str(ebb_bin), "engine-core", "--model", str(model), "--coordinator", f"127.0.0.1:{port}", "--rank", "1",
           "--world-size", "2", "--generation", "1", "--engine-id", "engine-1", "--enable-expert-parallel",
           "--kv-cache-memory", "16MiB"]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


def test_a_peer_without_the_secret_is_refused(start_server, ebb_bin, tmp_path):
    d = require_fixture(FIXTURE)
    secret_file = tmp_path / "secret"
    secret_file.write_text("an-operator-chosen-secret-0123456789\n")
    with running_server(start_server, FIXTURE, *FLAGS, "--cluster-secret-file", str(secret_file)) as server:
        before = status(server)
        port = control_port(server)
        # The engine cores have it in their environment, not on their command line.
        for r in before["ranks"]:
            with open(f"/proc/{r['pid']}/cmdline", "rb") as f:
                assert b"an-operator-chosen-secret" not in f.read()
            with open(f"/proc/{r['pid']}/environ", "rb") as f:
                assert b"EBB_CLUSTER_SECRET=an-operator-chosen-secret-0123456789" in f.read().split(b"\0")
        for secret, reason in ((None, "needs the deployment's cluster secret"), ("a-wrong-secret-of-enough-length", "wrong cluster secret")):
            out = intruder(ebb_bin, d, port, secret)
            assert out.returncode != 0, out.stderr[-2000:]
            assert "unauthenticated" in out.stderr and reason in out.stderr, out.stderr[-2000:]
        after = status(server)
        assert after["generation"] == before["generation"]
        assert [(r["engine_id"], r["pid"], r["state"]) for r in after["ranks"]] == \
               [(r["engine_id"], r["pid"], r["state"]) for r in before["ranks"]]
        assert after["failures"] == []
        client = server.client()
        out = client.completions.create(model=client.models.list().data[0].id, prompt="hello", max_tokens=4, temperature=0)
        assert out.usage.completion_tokens == 4
        server.assert_alive()


def test_a_bad_secret_file_is_a_clear_error(ebb_bin, tmp_path):
    d = require_fixture(FIXTURE)
    short = tmp_path / "short"
    short.write_text("tiny")
    for path, message in ((short, "at least 16"), (tmp_path / "missing", "cannot read the cluster secret file")):
        out = subprocess.run([str(ebb_bin), "serve", "--model", str(d), "--port", "18125", *FLAGS,
                              "--cluster-secret-file", str(path)], capture_output=True, text=True, timeout=120)
        assert out.returncode != 0 and message in out.stderr, out.stderr[-2000:]
