#!/usr/bin/env python3
"""Timeline of the autoscaler under a burst then idling (docs/benchmarks.md, issue 14).

Starts `ebb serve` (built-in model, one rank, --autoscale), streams completions from
--workers threads for --burst seconds, then idles; prints every change of size with its time
from the start of the burst, the autoscaler's scale decisions, and the request counts.
Usage: scripts/autoscale_timeline.py EBB_BINARY [--burst 20] [--idle 45] [--workers 24]
"""
import argparse, json, subprocess, sys, threading, time, urllib.request, socket

p = argparse.ArgumentParser()
p.add_argument("ebb")
p.add_argument("--burst", type=float, default=20)
p.add_argument("--idle", type=float, default=45)
p.add_argument("--workers", type=int, default=24)
p.add_argument("--max-tokens", type=int, default=48)
a = p.parse_args()
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
base = f"http://127.0.0.1:{port}"
server = subprocess.Popen([a.ebb, "serve", "--model", "builtin:tiny-moe", "--port", str(port), "--data-parallel-size", "1",
                           "--enable-expert-parallel", "--enable-elastic-ep", "--kv-cache-memory", "16MiB", "--autoscale",
                           "--max-data-parallel-size", "3", "--autoscale-cooldown", "3"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

def get(path):
    with urllib.request.urlopen(base + path, timeout=10) as r:
        return json.loads(r.read())

for _ in range(300):
    try:
        urllib.request.urlopen(base + "/health", timeout=2); break
    except Exception:
        time.sleep(0.2)
stop = threading.Event(); ok = [0]; failed = [0]; lock = threading.Lock()

def worker(w):
    body = json.dumps({"model": "builtin:tiny-moe", "prompt": f"burst {w}", "max_tokens": a.max_tokens,
                       "temperature": 0, "ignore_eos": True}).encode()
    while not stop.is_set():
        try:
            req = urllib.request.Request(base + "/v1/completions", body, {"Content-Type": "application/json"})
            urllib.request.urlopen(req, timeout=120).read()
            with lock: ok[0] += 1
        except Exception:
            with lock: failed[0] += 1

threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(a.workers)]
t0 = time.monotonic()
for t in threads: t.start()
size, events = 1, []
while time.monotonic() - t0 < a.burst + a.idle:
    if time.monotonic() - t0 >= a.burst and not stop.is_set():
        stop.set(); events.append((time.monotonic() - t0, "burst ends"))
    st = get("/elastic_ep/status")
    n = len([r for r in st["ranks"] if r["state"] == "serving"])
    if n != size and not st["is_scaling"]:
        events.append((time.monotonic() - t0, f"{size} -> {n} ranks")); size = n
    time.sleep(0.25)
for t in threads: t.join(timeout=120)
print(f"requests: {ok[0]} completed, {failed[0]} failed")
for t, e in events: print(f"{t:6.1f} s  {e}")
for d in get("/elastic_ep/status")["autoscaler"]["decisions"]:
    if d["action"] == "scale": print("decision:", d["reason"])
server.terminate(); server.wait(timeout=20)
