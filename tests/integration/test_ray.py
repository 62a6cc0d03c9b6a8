"""Engine cores placed and supervised by Ray (issue 15), on a local Ray cluster of three
nodes (Ray's own `cluster_utils.Cluster`, each node with its own CPUs), everything on
127.0.0.1: `ebb serve --launcher ray` serves greedy outputs equal to one rank's, every engine
core runs under a Ray actor, resizes 2→3→2 under streaming load lose nothing, and a killed
actor or a removed node is a rank failure the deployment recovers from (a replacement placed
by Ray). An unreachable Ray address, and a placement Ray cannot satisfy, give clear errors
and change nothing. Ray comes from PyPI (scripts/integration-test.sh installs it)."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from conftest import F32_FIXTURES, load_reference, require_fixture, running_server
from test_batch_invariance import run_concurrent
from test_elastic import Load, scale, status
from test_rank_failure import redundancy_for_survivors, serving, wait_for

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
FIXTURE = "qwen3-moe-tiny-f32"


def import_ray():
    try:
        import ray  # noqa: F401
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("Ray is missing (scripts/integration-test.sh installs it: pip install 'ray[default]')")
        pytest.skip("Ray is not installed")
    import ray
    return ray


@pytest.fixture(scope="module")
def ray_cluster():
    ray = import_ray()
    from ray.cluster_utils import Cluster
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": True})
    workers = [cluster.add_node(num_cpus=2) for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, namespace="ebb-tests", logging_level="ERROR")
    yield ray, cluster, workers
    ray.shutdown()
    cluster.shutdown()


def engine_actors(ray_module) -> list[dict]:
    from ray.util.state import list_actors
    return [a for a in list_actors(filters=[("class_name", "=", "EngineCore"), ("state", "=", "ALIVE")], detail=True)]


def ray_flags(cluster, *extra: str) -> list[str]:
    return ["--launcher", "ray", "--ray-address", cluster.address, "--advertise-address", "127.0.0.1",
            "--enable-expert-parallel", "--enable-elastic-ep", "--kv-cache-memory", "16MiB", "--scale-timeout", "60",
            *extra]


@pytest.mark.parametrize("fixture", F32_FIXTURES)
def test_ray_ranks_serve_the_single_rank_outputs(start_server, ray_cluster, fixture):
    """Concurrent greedy requests over two Ray-placed ranks equal the one-rank reference."""
    d = require_fixture(fixture)
    with running_server(start_server, fixture, *ray_flags(ray_cluster[1], "--data-parallel-size", "2")) as server:
        assert len(engine_actors(ray_cluster[0])) == 2
        run_concurrent(server, load_reference(d), seed=5)
        server.assert_alive()


def test_ray_places_serves_resizes_and_recovers(start_server, ray_cluster):
    ray, cluster, workers = ray_cluster
    d = require_fixture(FIXTURE)
    reference = load_reference(d)
    flags = ray_flags(cluster, "--data-parallel-size", "2", *redundancy_for_survivors(d, 2, 1),
                      "--replace-failed-ranks", "--max-data-parallel-size", "3")
    with running_server(start_server, FIXTURE, *flags) as server:
        s = status(server)
        pids = sorted(r["pid"] for r in s["ranks"] if r["state"] == "serving")
        actors = engine_actors(ray)
        assert len(actors) == 2, actors
        # Each engine core is the child of its actor's worker process.
        for pid in pids:
            with open(f"/proc/{pid}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
            assert parent in {a["pid"] for a in actors}, (pid, parent, actors)

        with Load(server, reference, workers=4) as load:
            time.sleep(1.0)
            r = scale(server, {"new_data_parallel_size": 3})
            assert r.status == 200, r.text
            assert len(engine_actors(ray)) == 3
            time.sleep(1.0)
            r = scale(server, {"new_data_parallel_size": 2})
            assert r.status == 200, r.text
            assert len(engine_actors(ray)) == 2
            time.sleep(1.0)

            # An engine core's actor is killed: a rank failure, recovered, and replaced by Ray.
            victim = engine_actors(ray)[0]
            os.kill(victim["pid"], signal.SIGKILL)
            wait_for(server, "recovery after the actor was killed", serving(2, 1), timeout=120)

            # A node goes away with everything on it.
            actors = engine_actors(ray)
            node_ids = {a["node_id"] for a in actors}
            node = next((w for w in workers if w.node_id in node_ids), None)
            assert node is not None, (actors, [w.node_id for w in workers])
            lost = len([a for a in actors if a["node_id"] == node.node_id])
            cluster.remove_node(node)
            wait_for(server, "recovery after the node was removed", serving(2, 1 + lost), timeout=180)
            time.sleep(1.0)
        load.check()
        assert len(engine_actors(ray)) == 2
        server.assert_alive()


def test_missing_or_unreachable_ray_and_unsatisfiable_placements_are_clear_errors(start_server, ray_cluster, ebb_bin, tmp_path):
    ray, cluster, _ = ray_cluster
    d = require_fixture(FIXTURE)
    # Nothing listens there: `ebb serve` stops with the reason, having started nothing.
    out = subprocess.run([str(ebb_bin), "serve", "--model", str(d), "--port", "18123", "--data-parallel-size", "2",
                          "--launcher", "ray", "--ray-address", "127.0.0.1:1", "--enable-expert-parallel"],
                         capture_output=True, text=True, timeout=180)
    assert out.returncode != 0
    assert "cannot connect to the Ray cluster at '127.0.0.1:1'" in out.stderr, out.stderr[-2000:]
    # A Python without Ray (site-packages off): the same, naming what is missing.
    python = tmp_path / "python-without-ray"
    python.write_text("#!/bin/sh\nexec python3 -S \"$@\"\n")
    python.chmod(0o755)
    out = subprocess.run([str(ebb_bin), "serve", "--model", str(d), "--port", "18123", "--data-parallel-size", "2",
                          "--launcher", "ray", "--ray-python", str(python), "--ray-address", cluster.address,
                          "--enable-expert-parallel"], capture_output=True, text=True, timeout=180)
    assert out.returncode != 0
    assert "Ray is not installed for" in out.stderr, out.stderr[-2000:]

    # A running deployment asked for more ranks than the cluster has CPUs for: the resize
    # fails with Ray's reason and the deployment serves on, unchanged.
    flags = ray_flags(cluster, "--data-parallel-size", "2", "--max-data-parallel-size", "6", "--ray-placement-timeout", "5")
    with running_server(start_server, FIXTURE, *flags) as server:
        before = status(server)
        r = scale(server, {"new_data_parallel_size": 6})  # 4 more ranks of 1 CPU; 3 CPUs are free
        assert r.status in (400, 500), r.text
        assert "cannot be satisfied" in r.text, r.text
        after = status(server)
        assert after["generation"] == before["generation"]
        assert len([x for x in after["ranks"] if x["state"] == "serving"]) == 2
        assert len(engine_actors(ray)) == 2
        out = server.client().completions.create(model=server.client().models.list().data[0].id, prompt="hi", max_tokens=3)
        assert out.usage.completion_tokens == 3
