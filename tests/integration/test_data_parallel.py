"""Data-parallel attention + expert parallelism over engine-core processes.

`ebb serve --data-parallel-size N --enable-expert-parallel` starts N `ebb engine-core`
children that split the experts and exchange tokens over Gloo in every MoE layer. Greedy
outputs must equal the single-rank ones (the fixtures' HF reference) token for token, with
concurrent requests spread over every rank and ranks idling (dummy batches) while others
decode. A dead engine core must take `serve` down with a clear error and no orphans;
SIGTERM/SIGINT must stop every child.
"""

from __future__ import annotations

import os
import re
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import F32_FIXTURES, load_reference, metric_sum, require_fixture, running_server
from test_batch_invariance import run_concurrent

# Every architecture at every size of the acceptance matrix.
MATRIX = [(f, n) for f in F32_FIXTURES for n in (2, 3, 4)]


def child_pids(pid: int) -> list[int]:
    """Direct children of `pid` (Linux /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                out.append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    return sorted(out)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except OSError:
        return False


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [p for p in pids if alive(p)]
        if not left:
            return []
        time.sleep(0.1)
    return [p for p in pids if alive(p)]


def assigned_per_rank(server) -> dict[int, float]:
    m = server.metrics()
    out = {}
    for key, value in m.items():
        match = re.match(r'^ebb:rank_requests_assigned_total\{rank="(\d+)"\}$', key)
        if match:
            out[int(match.group(1))] = value
    return out


@pytest.mark.parametrize("fixture,ranks", MATRIX)
def test_expert_parallel_greedy_matches_single_rank(start_server, fixture, ranks):
    reference = load_reference(require_fixture(fixture))
    flags = ["--data-parallel-size", str(ranks), "--enable-expert-parallel", "--kv-cache-memory", "32MiB"]
    with running_server(start_server, fixture, *flags) as server:
        assert len(child_pids(server.proc.pid)) == ranks
        # All at once, then with staggered arrivals (new prefills join running decodes;
        # ranks without requests run dummy batches meanwhile).
        run_concurrent(server, reference, seed=300 + ranks)
        run_concurrent(server, reference, seed=400 + ranks, stagger=0.5)
        per_rank = assigned_per_rank(server)
        assert sorted(per_rank) == list(range(ranks)), f"per-rank metrics: {per_rank}"
        assert all(v > 0 for v in per_rank.values()), f"some rank got no request: {per_rank}"
        m = server.metrics()
        assert metric_sum(m, "ebb:rank_num_requests_running") == 0
        # One request alone: every other rank idles in dummy batches.
        client = server.client(timeout=120)
        model = client.models.list().data[0].id
        r = client.completions.create(model=model, prompt=reference["prompts"][0], max_tokens=24, temperature=0,
                                      logprobs=0, extra_body={"ignore_eos": True, "return_tokens_as_token_ids": True})
        got = [int(t.split(":", 1)[1]) for t in r.choices[0].logprobs.tokens]
        assert got == reference["greedy_new_tokens"][0]


def test_data_parallel_without_expert_parallelism(start_server):
    """Independent ranks (every rank holds every expert, no lockstep) give the same tokens."""
    fixture = F32_FIXTURES[0]
    reference = load_reference(require_fixture(fixture))
    with running_server(start_server, fixture, "--data-parallel-size", "2", "--kv-cache-memory", "32MiB") as server:
        run_concurrent(server, reference, seed=7)


def test_killed_engine_core_stops_serve(start_server):
    server = start_server("builtin:tiny-moe", "--data-parallel-size", "3", "--enable-expert-parallel",
                          "--kv-cache-memory", "16MiB")
    try:
        children = child_pids(server.proc.pid)
        assert len(children) == 3
        # Work in flight while the rank dies.
        client = server.client(timeout=60)
        with ThreadPoolExecutor(max_workers=4) as pool:
            futures = [pool.submit(client.completions.create, model="builtin:tiny-moe", prompt="hello " * 20,
                                   max_tokens=200, extra_body={"ignore_eos": True}) for _ in range(4)]
            time.sleep(0.5)
            victim = children[1]
            os.kill(victim, signal.SIGKILL)
            code = server.proc.wait(timeout=15)
            for f in futures:
                try:
                    f.result(timeout=15)
                except Exception:
                    pass
        assert code != 0, "serve exited with status 0 after an engine core died"
        log = server.log_text()
        # Whichever sees it first: the launcher or control plane (the dead rank exited or
        # disconnected), or a survivor whose data-plane collective lost that peer.
        assert re.search(r"engine core rank \d+ .*(exited|disconnected|stopped answering|Connection closed by peer)", log), log[-3000:]
        left = wait_gone(children, 10)
        assert not left, f"engine cores {left} outlived serve"
    finally:
        server.stop()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_every_engine_core(start_server, sig):
    server = start_server("builtin:tiny-moe", "--data-parallel-size", "2", "--enable-expert-parallel",
                          "--kv-cache-memory", "16MiB")
    try:
        children = child_pids(server.proc.pid)
        assert len(children) == 2
        client = server.client(timeout=60)
        client.completions.create(model="builtin:tiny-moe", prompt="hi", max_tokens=4)
        server.proc.send_signal(sig)
        server.proc.wait(timeout=20)
        left = wait_gone(children, 10)
        assert not left, f"engine cores {left} outlived serve after {sig.name}"
    finally:
        server.stop()


EPLB_MATRIX = [(f, n) for f in F32_FIXTURES for n in (2, 4)]


@pytest.mark.parametrize("fixture,ranks", EPLB_MATRIX)
def test_rebalancing_under_load_keeps_greedy_outputs(start_server, fixture, ranks):
    """Redundant experts and a forced rebalance every 3 steps while 16 requests decode: the
    weights move between ranks under load and the tokens stay the single-rank ones."""
    reference = load_reference(require_fixture(fixture))
    flags = ["--data-parallel-size", str(ranks), "--enable-expert-parallel", "--kv-cache-memory", "32MiB",
             "--enable-eplb", "--num-redundant-experts", str(ranks), "--eplb-step-interval", "3",
             "--eplb-window-size", "16", "--eplb-min-gain=-1"]
    with running_server(start_server, fixture, *flags) as server:
        run_concurrent(server, reference, seed=500 + ranks)
        run_concurrent(server, reference, seed=600 + ranks, stagger=0.5)
        m = server.metrics()
        assert m.get("ebb:eplb_rearrangements_total", 0) > 0, f"no rearrangement happened: {m}"
        assert m.get("ebb:eplb_bytes_sent_total", 0) > 0
        assert any(k.startswith("ebb:eplb_layer_balancedness") for k in m)


def test_eplb_needs_expert_parallelism(ebb_bin):
    import subprocess
    r = subprocess.run([str(ebb_bin), "serve", "--enable-eplb", "--port", "1"], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "--enable-expert-parallel" in r.stderr
    # Checked before any engine core starts (nothing is spawned, so this is quick).
    r = subprocess.run([str(ebb_bin), "serve", "--data-parallel-size", "2", "--enable-expert-parallel", "--enable-eplb",
                        "--num-redundant-experts", "2000000", "--port", "18999"], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "above the limit" in r.stderr, r.stderr[-2000:]
    assert "engine core" not in r.stderr, r.stderr[-2000:]
    r = subprocess.run([str(ebb_bin), "serve", "--num-redundant-experts", "2", "--port", "18999"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "--enable-elastic-ep" in r.stderr, r.stderr[-2000:]


@pytest.mark.parametrize("flags", [("--enable-eplb",), ("--enable-elastic-ep", "--num-redundant-experts", "1")])
def test_slots_round_up_to_a_multiple_of_the_ranks(start_server, flags):
    """16 experts over 3 ranks: each rank gets 6 slots (2 replicas in all), at start-up as after
    a resize; --enable-elastic-ep turns EPLB on, so its options apply without --enable-eplb."""
    server = start_server("builtin:tiny-moe", "--data-parallel-size", "3", "--enable-expert-parallel",
                          "--kv-cache-memory", "16MiB", *flags)
    try:
        r = server.request("POST", "/v1/completions", {"model": "builtin:tiny-moe", "prompt": "hello", "max_tokens": 4})
        assert r.status == 200, r.text
        if "--enable-elastic-ep" in flags:
            placement = server.request("GET", "/elastic_ep/status").json()["placement"]
            assert placement["slots_per_rank"] == 6 and placement["physical_slots"] == 18, placement
    finally:
        server.stop()
