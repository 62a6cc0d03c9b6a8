#!/usr/bin/env python3
"""Resizes and a lost rank under streaming load, with the engine cores started by the local
launcher and by Ray (`--launcher ray` on a three-node Ray cluster on this machine, Ray's
`cluster_utils.Cluster`), and prints one table: what Ray placement costs on top of the same
resize. Needs `pip install "ray[default]"`.

Usage: python3 scripts/bench_launchers.py --ebb .build/release/ebb --model ../shared/fixtures/qwen3-moe-tiny-f32
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(port: int, method: str, path: str, body=None, timeout=180):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read() or b"{}")


def load(port: int, stop: threading.Event, errors: list, done: list):
    while not stop.is_set():
        try:
            body = {"model": "m", "prompt": "The quick brown fox", "max_tokens": 32, "temperature": 0, "ignore_eos": True}
            call(port, "POST", "/v1/completions", body, timeout=120)
            done.append(1)
        except Exception as e:  # noqa: BLE001 - counted
            errors.append(repr(e))


def run(ebb: str, model: str, launcher: list[str], name: str) -> list[tuple]:
    port = free_port()
    cmd = [ebb, "serve", "--model", model, "--served-model-name", "m", "--port", str(port), "--data-parallel-size", "2",
           "--enable-expert-parallel", "--enable-elastic-ep", "--num-redundant-experts", "16", "--replace-failed-ranks",
           "--kv-cache-memory", "16MiB", "--max-data-parallel-size", "3", *launcher]
    log = open(f"/tmp/bench-launchers-{name}.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    rows = []
    try:
        for _ in range(600):
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).status == 200:
                    break
            except OSError:
                time.sleep(0.2)
        stop, errors, done = threading.Event(), [], []
        workers = [threading.Thread(target=load, args=(port, stop, errors, done), daemon=True) for _ in range(4)]
        for w in workers:
            w.start()
        time.sleep(2)
        for size in (3, 2):
            call(port, "POST", "/scale_elastic_ep", {"new_data_parallel_size": size})
            ev = call(port, "GET", "/elastic_ep/status")["events"][-1]
            p = ev["phases"]
            rows.append((name, f"{ev['from']}→{ev['to']}", ev["total_seconds"], p.get("launch", 0), p.get("register", 0),
                         p.get("prepare+commit", 0)))
            time.sleep(2)
        status = call(port, "GET", "/elastic_ep/status")
        victim = next(r["pid"] for r in status["ranks"] if r["state"] == "serving" and r["rank"] == 1)
        if name == "ray":
            # The actor's worker process goes: the engine core follows it.
            with open(f"/proc/{victim}/stat") as f:
                victim = int(f.read().rsplit(")", 1)[1].split()[1])
        killed = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        while True:
            s = call(port, "GET", "/elastic_ep/status")
            serving = [r for r in s["ranks"] if r["state"] == "serving"]
            if s["failures"] and s["failures"][-1]["outcome"] == "recovered" and len(serving) == 2 and not s["is_scaling"]:
                break
            if time.monotonic() - killed > 180:
                raise RuntimeError("no recovery within 180 s")
            time.sleep(0.1)
        f = s["failures"][-1]
        replaced = s["events"][-1]
        rows.append((name, "kill rank 1", time.monotonic() - killed, f["recovery_seconds"], replaced["phases"].get("launch", 0),
                     replaced["total_seconds"]))
        stop.set()
        for w in workers:
            w.join(timeout=120)
        rows.append((name, "requests", len(done), len(errors), 0, 0))
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ebb", required=True)
    ap.add_argument("--model", required=True)
    args = ap.parse_args()
    import ray
    from ray.cluster_utils import Cluster
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    for _ in range(2):
        cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    try:
        rows = run(args.ebb, args.model, [], "local")
        rows += run(args.ebb, args.model, ["--launcher", "ray", "--ray-address", cluster.address,
                                           "--advertise-address", "127.0.0.1"], "ray")
    finally:
        cluster.shutdown()
    print("| launcher | what | total s | launch s (kill: recovery s) | register s (kill: replacement launch s) | prepare+commit s (kill: replacement total s) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        if r[1] == "requests":
            print(f"| {r[0]} | requests completed / failed | {r[2]} / {r[3]} | | | |")
        else:
            print(f"| {r[0]} | {r[1]} | {r[2]:.2f} | {r[3]:.3f} | {r[4]:.3f} | {r[5]:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
