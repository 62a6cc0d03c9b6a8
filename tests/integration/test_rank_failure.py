"""Surviving a lost rank (issue 12).

An expert-parallel deployment with `--enable-elastic-ep` whose rank is killed (`kill -9`)
or stopped (SIGSTOP) keeps serving on the survivors: the lost rank is fenced, its requests
continue on the survivors after the tokens their clients already have, the survivors form
a new generation and restore the experts only the lost rank held. No request fails and
every greedy output equals the static single-rank one. With `--replace-failed-ranks` the
deployment grows back to its size through the scale-up path.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest

from conftest import F32_FIXTURES, http_request, load_reference, require_fixture, running_server
from test_elastic import Load, scale, status

BASE = ["--enable-expert-parallel", "--enable-elastic-ep", "--kv-cache-memory", "16MiB", "--scale-timeout", "30"]


def redundancy_for_survivors(fixture_dir, ranks: int, survivors: int) -> list[str]:
    """EPLB slots such that `survivors` ranks still hold every expert."""
    config = json.loads((fixture_dir / "config.json").read_text())
    experts = config.get("num_experts") or config.get("num_local_experts") or config["n_routed_experts"]
    per_rank = -(-experts // survivors)
    return ["--num-redundant-experts", str(ranks * per_rank - experts)]


def serving_pids(server) -> dict[int, int]:
    return {r["rank"]: r["pid"] for r in status(server)["ranks"] if r["state"] == "serving"}


def wait_for(server, what: str, predicate, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = status(server)
        if predicate(last):
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last status: {json.dumps(last)[:2000]}\nlog:\n{server.log_tail(60)}")


def serving(n: int, failures: int):
    """`n` ranks serve after `failures` lost ranks were recovered from."""
    return lambda s: (not s["is_recovering"] and not s["is_scaling"]
                      and len([r for r in s["ranks"] if r["state"] == "serving"]) == n
                      and len(s["failures"]) == failures and all(f["outcome"] == "recovered" for f in s["failures"]))


def kill_rank(server, rank: int, sig=signal.SIGKILL) -> int:
    pid = serving_pids(server)[rank]
    os.kill(pid, sig)
    return pid


def check_incidents(s, count: int):
    failures = s["failures"]
    assert len(failures) == count, failures
    for f in failures:
        assert f["outcome"] == "recovered", f
        assert f["cause"] in ("process_exited", "control_stream_closed", "heartbeat_timeout", "rank_failed"), f
        assert f["recovery_seconds"] is not None, f
        assert f["experts_checked"] > 0 and f["expert_mismatches"] == 0, f


@pytest.mark.parametrize("fixture", F32_FIXTURES)
def test_rank_zero_middle_and_last_rank_killed_under_load(start_server, fixture):
    """DP=3: kill -9 rank 0, then (replaced) a middle rank, then the last rank; nothing fails."""
    d = require_fixture(fixture)
    reference = load_reference(d)
    flags = ["--data-parallel-size", "3", *BASE, *redundancy_for_survivors(d, 3, 2), "--replace-failed-ranks"]
    with running_server(start_server, fixture, *flags) as server:
        with Load(server, reference, workers=6) as load:
            for n, victim in enumerate((0, 1, 2), start=1):
                time.sleep(1.0)
                kill_rank(server, victim)
                # The survivors serve first, then the replacement joins.
                s = wait_for(server, f"recovery and replacement after killing rank {victim}", serving(3, n))
                check_incidents(s, n)
                assert s["events"][-1]["outcome"] == "committed", s["events"][-1]
                assert s["events"][-1]["expert_mismatches"] == 0
            time.sleep(1.0)
        load.check()
        m = server.metrics()
        assert m.get('ebb:rank_failures_total{outcome="recovered"}') == 3
        assert server.request("GET", "/health").status == 200
        server.assert_alive()


def test_without_replacement_the_deployment_stays_smaller_then_resizes(start_server):
    d = require_fixture("qwen3-moe-tiny-f32")
    reference = load_reference(d)
    flags = ["--data-parallel-size", "3", *BASE, *redundancy_for_survivors(d, 3, 2)]
    with running_server(start_server, "qwen3-moe-tiny-f32", *flags) as server:
        with Load(server, reference, workers=6) as load:
            time.sleep(1.0)
            kill_rank(server, 1)
            s = wait_for(server, "the survivors serving", serving(2, 1))
            check_incidents(s, 1)
            lost = s["failures"][0]
            assert lost["rank"] == 1 and lost["engine_id"] == "engine-1", lost
            assert "communicator" in lost["phases"] and "weights" in lost["phases"], lost
            time.sleep(1.0)
            # The smaller deployment resizes like any other.
            r = scale(server, {"new_data_parallel_size": 3})
            assert r.status == 200, f"{r.text}\n{server.log_tail(60)}"
            time.sleep(1.0)
        load.check()
        assert status(server)["generation"] >= 3
        server.assert_alive()


def test_two_ranks_killed_at_once(start_server):
    """DP=4: kill -9 ranks 1 and 3 together; one new generation over the other two serves."""
    d = require_fixture("qwen3-moe-tiny-f32")
    reference = load_reference(d)
    flags = ["--data-parallel-size", "4", *BASE, *redundancy_for_survivors(d, 4, 2)]
    with running_server(start_server, "qwen3-moe-tiny-f32", *flags) as server:
        with Load(server, reference, workers=6) as load:
            time.sleep(1.0)
            pids = serving_pids(server)
            os.kill(pids[1], signal.SIGKILL)
            os.kill(pids[3], signal.SIGKILL)
            s = wait_for(server, "the two survivors serving", serving(2, 2))
            check_incidents(s, 2)
            assert sorted(f["rank"] for f in s["failures"]) == [1, 3], s["failures"]
            assert [r["engine_id"] for r in s["ranks"]] == ["engine-0", "engine-2"], s["ranks"]
            time.sleep(1.0)
        load.check()
        server.assert_alive()


def test_every_rank_killed_then_a_new_generation_loads_the_checkpoint(start_server):
    """Both ranks killed at once: requests get 503 while nobody serves, then
    `--replace-failed-ranks` starts a new generation from the checkpoint (nobody is left to
    copy weights from) and it serves the reference outputs again."""
    d = require_fixture("qwen3-moe-tiny-f32")
    reference = load_reference(d)
    flags = ["--data-parallel-size", "2", *BASE, *redundancy_for_survivors(d, 2, 1), "--replace-failed-ranks"]
    with running_server(start_server, "qwen3-moe-tiny-f32", *flags) as server:
        model = server.client().models.list().data[0].id
        before = status(server)["generation"]
        pids = serving_pids(server)
        for pid in pids.values():
            os.kill(pid, signal.SIGKILL)
        saw_503 = False
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            s = status(server)
            serving_now = [r for r in s["ranks"] if r["state"] == "serving"]
            if len(serving_now) == 2 and s["generation"] > before and not s["is_recovering"]:
                break
            if not serving_now:
                r = http_request("127.0.0.1", server.port, "POST", "/v1/completions", {"model": model, "prompt": "hi", "max_tokens": 2})
                saw_503 = saw_503 or r.status == 503
                assert r.status in (200, 503), r.text
            time.sleep(0.1)
        else:
            raise AssertionError(f"no new generation serves: {json.dumps(status(server))[:2000]}\n{server.log_tail(60)}")
        assert saw_503, "requests while no rank served were not answered 503"
        assert len(s["failures"]) == 2 and any(f["outcome"] == "no_survivors" for f in s["failures"]), s["failures"]
        assert "from the checkpoint" in server.log_text()
        with Load(server, reference, workers=3) as load:
            time.sleep(2.0)
        load.check()
        assert server.request("GET", "/health").status == 200
        server.assert_alive()


def test_ten_kills_in_a_row_with_replacement(start_server):
    d = require_fixture("qwen3-moe-tiny-f32")
    reference = load_reference(d)
    flags = ["--data-parallel-size", "3", *BASE, *redundancy_for_survivors(d, 3, 2), "--replace-failed-ranks"]
    with running_server(start_server, "qwen3-moe-tiny-f32", *flags) as server:
        with Load(server, reference, workers=4) as load:
            for n in range(1, 11):
                time.sleep(0.5)
                kill_rank(server, n % 3)
                s = wait_for(server, f"size 3 after kill {n}", serving(3, n))
                check_incidents(s, n)
        load.check()
        server.assert_alive()


def test_stopped_rank_is_detected_fenced_and_survived(start_server):
    d = require_fixture("mixtral-tiny-f32")
    reference = load_reference(d)
    flags = ["--data-parallel-size", "3", *BASE, *redundancy_for_survivors(d, 3, 2), "--rank-failure-timeout", "1.5"]
    with running_server(start_server, "mixtral-tiny-f32", *flags) as server:
        with Load(server, reference, workers=4) as load:
            time.sleep(1.0)
            pid = kill_rank(server, 2, signal.SIGSTOP)
            s = wait_for(server, "the survivors serving", serving(2, 1), timeout=60)
            check_incidents(s, 1)
            assert s["failures"][0]["cause"] == "heartbeat_timeout", s["failures"]
            time.sleep(1.0)
        load.check()
        # Fenced: the stopped process was killed, not left behind.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}"):
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    break
            time.sleep(0.1)
        assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z"
        server.assert_alive()


@pytest.mark.parametrize("phase", ["launch", "register", "communicator", "transfer", "warmup"])
def test_kill_during_each_resize_phase_then_the_next_resize_works(start_server, phase):
    """A member is killed while the resize to generation 2 holds in `phase`: the resize
    rolls back, the survivors recover, nothing is lost, and the next resize works."""
    d = require_fixture("qwen3-moe-tiny-f32")
    reference = load_reference(d)
    os.environ["EBB_FAULT"] = f"pause.{phase}=3@2"
    try:
        server = start_server("qwen3-moe-tiny-f32", "--data-parallel-size", "3", *BASE, *redundancy_for_survivors(d, 3, 2))
    finally:
        del os.environ["EBB_FAULT"]
    try:
        with Load(server, reference, workers=4) as load:
            time.sleep(1.0)
            answer = {}
            t = threading.Thread(target=lambda: answer.setdefault("r", scale(server, {"new_data_parallel_size": 4})))
            t.start()
            wait_for(server, "the resize to start", lambda s: s["is_scaling"], timeout=30)
            time.sleep(1.5)  # inside the 3 s pause
            kill_rank(server, 1)
            t.join(timeout=180)
            r = answer["r"]
            assert r.status == 500 and "lost" in r.text, r.text  # "engine core engine-1 was lost …" or "… (a peer was lost)"
            final = wait_for(server, "the survivors serving", serving(2, 1))
            assert final["events"][-1]["outcome"] == "rolled_back", final["events"]
            time.sleep(0.5)
            r = scale(server, {"new_data_parallel_size": 3})
            assert r.status == 200, f"{r.text}\n{server.log_tail(60)}"
            time.sleep(1.0)
        load.check()
        server.assert_alive()
    finally:
        server.stop()


def test_survivors_that_cannot_hold_every_expert_fail_cleanly(start_server):
    # 16 experts over 3 ranks: 6 slots a rank, two survivors hold 12.
    server = start_server("qwen3-moe-tiny-f32", "--data-parallel-size", "3", *BASE)
    try:
        kill_rank(server, 0)
        code = server.proc.wait(timeout=30)
        assert code != 0
        assert "cannot hold 16 experts" in server.log_text(), server.log_tail(40)
    finally:
        server.stop()


def test_plain_data_parallel_survives_and_the_last_rank_gives_503(start_server):
    d = require_fixture("qwen3-moe-tiny-f32")
    reference = load_reference(d)
    server = start_server("qwen3-moe-tiny-f32", "--data-parallel-size", "2", "--kv-cache-memory", "16MiB")
    try:
        client = server.client(timeout=60)
        model = client.models.list().data[0].id
        ranks = server.metrics()
        # Plain data parallelism has no /elastic_ep/status: kill through the process tree.
        from test_data_parallel import child_pids
        children = child_pids(server.proc.pid)
        assert len(children) == 2
        with Load(server, reference, workers=4) as load:
            time.sleep(1.0)
            os.kill(children[0], signal.SIGKILL)
            time.sleep(2.0)
        load.check()
        os.kill(children[1], signal.SIGKILL)
        time.sleep(1.0)
        assert server.request("GET", "/health").status == 200
        r = http_request("127.0.0.1", server.port, "POST", "/v1/completions",
                         {"model": model, "prompt": "hi", "max_tokens": 2})
        assert r.status == 503, r.text
        assert ranks is not None
        server.assert_alive()
    finally:
        server.stop()


def test_seeded_sampling_continues_identically_after_a_kill(start_server):
    """A seeded request draws one random number per token, so its continuation on a
    survivor (prompt + streamed tokens re-prefilled, the generator advanced past them)
    samples what the lost rank would have."""
    d = require_fixture("qwen3-moe-tiny-f32")
    reference = load_reference(d)
    flags = ["--data-parallel-size", "3", *BASE, *redundancy_for_survivors(d, 3, 2)]
    with running_server(start_server, "qwen3-moe-tiny-f32", *flags) as server:
        client = server.client(timeout=120)
        model = client.models.list().data[0].id

        def sample(i: int) -> list[int]:
            stream = client.completions.create(
                model=model, prompt=reference["prompts"][i % len(reference["prompts"])], max_tokens=96,
                temperature=0.8, top_p=0.9, seed=1000 + i, logprobs=0, stream=True,
                extra_body={"ignore_eos": True, "return_tokens_as_token_ids": True})
            tokens = []
            for chunk in stream:
                for c in chunk.choices:
                    if c.logprobs and c.logprobs.tokens:
                        tokens += [int(t.split(":", 1)[1]) for t in c.logprobs.tokens]
            return tokens

        expected = [sample(i) for i in range(6)]
        results: dict[int, list[int]] = {}
        threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, sample(i))) for i in range(6)]
        for t in threads:
            t.start()
        time.sleep(0.4)
        kill_rank(server, 1)
        for t in threads:
            t.join(timeout=120)
        s = wait_for(server, "the survivors serving", serving(2, 1))
        assert s["failures"][0]["requests_resubmitted"] >= 1, s["failures"]
        assert [results.get(i) for i in range(6)] == expected
        server.assert_alive()
