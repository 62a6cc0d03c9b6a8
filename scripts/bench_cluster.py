#!/usr/bin/env python3
"""Benchmarks of the multi-process deployment (issues 4-6); prints markdown tables.

  python3 scripts/bench_cluster.py --ebb .build/release/ebb [--fixture ../shared/fixtures/qwen3-moe-tiny-f32]

1. `ebb bench serve` against `ebb serve --data-parallel-size 1, 2, 4` (EP for > 1) of the
   builtin model and a fixture, plus each rank's expert all-to-all time and bytes per MoE
   layer pass from /metrics.
2. EPLB: balancedness before/after on a Zipf load and the policy's time for DeepSeek-V3's
   shape (`ebb eplb`), and the rearrangement transfer and pause while serving.
3. Elastic EP: per-phase resize timings 2→4→3→1→2 (and removing a middle rank) under load.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, timeout=600):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class Server:
    def __init__(self, ebb, model, *flags):
        self.port = free_port()
        self.log = tempfile.NamedTemporaryFile(prefix="ebb-bench-", suffix=".log", delete=False)
        self.proc = subprocess.Popen([ebb, "serve", "--model", model, "--port", str(self.port), *flags],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 300
        while time.time() < deadline:
            try:
                if http("GET", self.url("/health"), timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise SystemExit(f"serve exited: see {self.log.name}")
            time.sleep(0.2)
        raise SystemExit("serve did not start")

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def metrics(self):
        out = {}
        for line in http("GET", self.url("/metrics"))[1].splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
        return out

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)


def bench_serve(ebb, url, args):
    out = tempfile.NamedTemporaryFile(suffix=".json", delete=False).name
    subprocess.run([ebb, "bench", "serve", "--url", url, "--result-json", out, *args], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(out) as f:
        return json.load(f)


def data_parallel(ebb, model, name, bench_args, ranks_list, kv):
    print(f"\n### {name}: `ebb bench serve {' '.join(bench_args)}`\n")
    print("| ranks | req/s | output tok/s | TTFT p50 (ms) | TPOT p50 (ms) | E2E p50 (s) | all-to-all ms per MoE layer pass (mean over ranks) | KiB sent per rank per pass |")
    print("|---|---|---|---|---|---|---|---|")
    for ranks in ranks_list:
        flags = ["--kv-cache-memory", kv, "--data-parallel-size", str(ranks)]
        if ranks > 1:
            flags.append("--enable-expert-parallel")
        s = Server(ebb, model, *flags)
        try:
            r = bench_serve(ebb, s.url(""), bench_args)
            m = s.metrics()
        finally:
            s.stop()
        calls = [v for k, v in m.items() if k.startswith("ebb:rank_expert_exchange_layer_calls_total")]
        secs = [v for k, v in m.items() if k.startswith("ebb:rank_expert_exchange_seconds_total")]
        sent = [v for k, v in m.items() if k.startswith("ebb:rank_expert_exchange_bytes_total")]
        per_call_ms = sum(s_ / c for s_, c in zip(secs, calls) if c) / max(1, len(calls)) * 1000 if calls else 0
        per_call_kib = sum(b / c for b, c in zip(sent, calls) if c) / max(1, len(calls)) / 1024 if calls else 0
        print(f"| {ranks} | {r['request_throughput']:.2f} | {r['output_throughput']:.1f} | {r['median_ttft_ms']:.1f} | "
              f"{r['median_tpot_ms']:.2f} | {r['median_e2el_ms'] / 1000:.2f} | "
              f"{per_call_ms:.3f} | {per_call_kib:.1f} |" if ranks > 1 else
              f"| {ranks} | {r['request_throughput']:.2f} | {r['output_throughput']:.1f} | {r['median_ttft_ms']:.1f} | "
              f"{r['median_tpot_ms']:.2f} | {r['median_e2el_ms'] / 1000:.2f} | – | – |")
        sys.stdout.flush()


def eplb_policy(ebb):
    print("\n### EPLB policy (`ebb eplb`), Zipf(1.0) load over experts, random order per layer\n")
    print("| shape | layers | experts | slots | groups | nodes | ranks | balancedness contiguous → EPLB | policy wall time (s) |")
    print("|---|---|---|---|---|---|---|---|---|")
    rng = random.Random(0)
    for (name, layers, experts, slots, groups, nodes, ranks) in [
            ("DeepSeek-V3", 58, 256, 288, 8, 4, 32), ("Qwen3-30B-A3B", 48, 128, 144, 1, 1, 8),
            ("tiny (builtin)", 2, 16, 20, 1, 1, 4)]:
        load = []
        for _ in range(layers):
            row = [1000.0 / (i + 1) for i in range(experts)]
            rng.shuffle(row)
            load.append([round(x, 3) for x in row])
        path = tempfile.NamedTemporaryFile(suffix=".json", delete=False, mode="w")
        json.dump(load, path)
        path.close()
        t0 = time.time()
        r = subprocess.run([ebb, "eplb", "--load", path.name, "--slots", str(slots), "--groups", str(groups),
                            "--nodes", str(nodes), "--ranks", str(ranks)], capture_output=True, text=True, check=True)
        wall = time.time() - t0
        mean = re.search(r"mean\s+([\d.]+) → ([\d.]+)", r.stdout)
        print(f"| {name} | {layers} | {experts} | {slots} | {groups} | {nodes} | {ranks} | {mean.group(1)} → {mean.group(2)} | {wall:.3f} |")


def eplb_serving(ebb, model, name, kv):
    print(f"\n### EPLB rearrangement while serving ({name}, 4 ranks, 4 redundant experts, rebalance every 20 steps)\n")
    s = Server(ebb, model, "--kv-cache-memory", kv, "--data-parallel-size", "4", "--enable-expert-parallel",
               "--enable-eplb", "--num-redundant-experts", "4", "--eplb-step-interval", "20", "--eplb-window-size", "100")
    try:
        r = bench_serve(ebb, s.url(""), ["--request-rate", "inf", "--max-concurrency", "16", "--num-prompts", "64",
                                         "--input-len", "64", "--output-len", "32", "--seed", "3", "--max-token-id", "250"])
        m = s.metrics()
    finally:
        s.stop()
    bal = [v for k, v in m.items() if k.startswith("ebb:eplb_layer_balancedness")]
    print("| rearrangements | skipped (gain ≤ 0.01) | last transfer (ms, background) | last switch pause (ms) | bytes moved (MiB) | balancedness per layer at last decision | output tok/s |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {m.get('ebb:eplb_rearrangements_total', 0):.0f} | {m.get('ebb:eplb_skipped_total', 0):.0f} | "
          f"{m.get('ebb:eplb_last_transfer_seconds', 0) * 1000:.1f} | {m.get('ebb:eplb_last_commit_seconds', 0) * 1000:.3f} | "
          f"{m.get('ebb:eplb_bytes_sent_total', 0) / 2**20:.1f} | {', '.join(f'{b:.3f}' for b in bal)} | {r['output_throughput']:.1f} |")


def elastic(ebb, model, name, kv):
    print(f"\n### Elastic resizes under load ({name}; 4 clients streaming 32-token greedy completions throughout)\n")
    s = Server(ebb, model, "--kv-cache-memory", kv, "--data-parallel-size", "2", "--enable-expert-parallel",
               "--enable-elastic-ep")
    stop = threading.Event()
    counts = {"ok": 0, "failed": 0}
    lock = threading.Lock()

    def client(i):
        while not stop.is_set():
            code, _ = http("POST", s.url("/v1/completions"), {"model": model, "prompt": [3 + i, 5, 7, 9], "max_tokens": 32,
                                                               "temperature": 0, "ignore_eos": True}, timeout=300)
            with lock:
                counts["ok" if code == 200 else "failed"] += 1

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(4)]
    for t in threads:
        t.start()
    rows = []
    try:
        for body in [{"new_data_parallel_size": 4}, {"new_data_parallel_size": 3}, {"new_data_parallel_size": 1},
                     {"new_data_parallel_size": 2}, {"new_data_parallel_size": 3}, {"remove_ranks": [1]}]:
            time.sleep(1.0)
            t0 = time.time()
            code, text = http("POST", s.url("/scale_elastic_ep"), body)
            wall = time.time() - t0
            ev = json.loads(http("GET", s.url("/elastic_ep/status"))[1])["events"][-1]
            rows.append((body, code, wall, ev))
        time.sleep(1.0)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=300)
        s.stop()
    print("| resize | status | wall (s) | launch | register | communicators | weights (dense + experts) | warm-up | switch pause | MiB moved | requests moved | experts checked / mismatches |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for body, code, wall, ev in rows:
        if code != 200:
            target = body.get("new_data_parallel_size", body.get("remove_ranks"))
            print(f"| → {target} requested | {code} | – | – | – | – | – | – | – | – | – | – |")
            continue
        p = ev["phases"]
        f = lambda k: f"{p[k] * 1000:.0f} ms" if k in p else "–"
        label = f"{ev['from']}→{ev['to']}" + (f" (remove {body['remove_ranks']})" if "remove_ranks" in body else "")
        print(f"| {label} | {code} | {wall:.2f} | {f('launch')} | {f('register')} | {f('rank:communicator')} | "
              f"{f('rank:weights')} | {f('rank:warmup')} | {f('rank:commit')} | {ev['bytes_moved'] / 2**20:.1f} | "
              f"{ev['migrated_requests']} | {ev['experts_checked']} / {ev['expert_mismatches']} |")
    print(f"\nRequests during the run: {counts['ok']} completed, {counts['failed']} failed or refused.")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ebb", default=".build/release/ebb")
    ap.add_argument("--fixture", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "fixtures",
                                                      "qwen3-moe-tiny-f32"))
    ap.add_argument("--only", default="dp,policy,eplb,elastic")
    a = ap.parse_args()
    parts = a.only.split(",")
    print(f"machine: {os.cpu_count()} cores; {open('/proc/cpuinfo').read().split('model name')[1].split(':')[1].splitlines()[0].strip()}")
    if "dp" in parts:
        data_parallel(a.ebb, "builtin:tiny-moe", "builtin:tiny-moe",
                      ["--request-rate", "inf", "--max-concurrency", "16", "--num-prompts", "64", "--input-len", "128",
                       "--output-len", "32", "--seed", "1"], [1, 2, 4], "256MiB")
        data_parallel(a.ebb, a.fixture, "qwen3-moe-tiny-f32",
                      ["--request-rate", "inf", "--max-concurrency", "16", "--num-prompts", "64", "--input-len", "128",
                       "--output-len", "32", "--seed", "1", "--max-token-id", "250"], [1, 2, 4], "256MiB")
    if "policy" in parts:
        eplb_policy(a.ebb)
    if "eplb" in parts:
        eplb_serving(a.ebb, a.fixture, "qwen3-moe-tiny-f32", "64MiB")
    if "elastic" in parts:
        elastic(a.ebb, "builtin:tiny-moe", "builtin:tiny-moe", "64MiB")
        elastic(a.ebb, a.fixture, "qwen3-moe-tiny-f32", "64MiB")


if __name__ == "__main__":
    main()
