#!/usr/bin/env python3
"""Expert-parallel decode and resize numbers on a GPU host, with only the standard library.

Serves a config.json with dummy weights (`--load-format dummy`) and measures, with
`ebb bench serve`, streamed decode at several concurrencies: first one rank on one GPU,
then DP/EP over the given devices (several ranks may share one GPU: NCCL over sockets).
Then starts one elastic rank, resizes 1 -> N -> 1 while a load runs and prints each
resize's phases from GET /elastic_ep/status.

Usage: gpu-ep-bench.py EBB CONFIG_DIR --devices cuda:0,cuda:0 [--num-layers N]
       [--concurrency 1,8,32] [--input-len 128] [--output-len 64] [--requests-per-concurrency 4]
       [--skip-single] [--skip-ep] [--skip-elastic]
"""
import argparse, json, socket, subprocess, sys, threading, time, urllib.request

p = argparse.ArgumentParser()
p.add_argument("ebb")
p.add_argument("config")
p.add_argument("--devices", default="cuda:0,cuda:0")
p.add_argument("--num-layers", type=int)
p.add_argument("--concurrency", default="1,8,32")
p.add_argument("--input-len", type=int, default=128)
p.add_argument("--output-len", type=int, default=64)
p.add_argument("--kv-cache-memory", default="4GiB")
p.add_argument("--skip-single", action="store_true")
p.add_argument("--skip-elastic", action="store_true")
p.add_argument("--skip-ep", action="store_true", help="only the one-rank runs (the serving table)")
p.add_argument("--requests-per-concurrency", type=int, default=4)
args = p.parse_args()
devices = args.devices.split(",")
layers = ["--num-layers", str(args.num_layers)] if args.num_layers else []
# cpu,cpu: the same runs on the host (to try the script without a GPU).
placement = ["--device", "cpu"] if all(d == "cpu" for d in devices) else ["--devices", args.devices]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path, timeout=30):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
        return r.read().decode()


def post(port, path, body, timeout=600):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class Server:
    def __init__(self, label, flags):
        self.label, self.port = label, free_port()
        cmd = [args.ebb, "serve", "--model", args.config, "--load-format", "dummy", *layers, "--port", str(self.port),
               "--kv-cache-memory", args.kv_cache_memory, *flags]
        print(f"\n== {label}: {' '.join(cmd[1:])}", flush=True)
        self.log = open(f"/tmp/ebb-ep-bench-{self.port}.log", "w+")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        started = time.time()
        while time.time() - started < 400:
            try:
                get(self.port, "/health", timeout=2)
                print(f"ready after {time.time() - started:.1f} s", flush=True)
                return
            except Exception:
                if self.proc.poll() is not None:
                    break
                time.sleep(1)
        self.stop()
        raise RuntimeError(f"{label}: the server did not come up")

    def lines(self, *keys):
        self.log.flush()
        self.log.seek(0)
        return [l.rstrip() for l in self.log if any(k in l for k in keys)]

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        for l in self.lines("ready:", "NCCL", "decode graphs", "error", "failed", "rolled back", "committed"):
            print("  log: " + l[:400])


def bench(server, concurrency, prompts=None):
    n = prompts or max(8, args.requests_per_concurrency * concurrency)
    out = subprocess.run([args.ebb, "bench", "serve", "--url", f"http://127.0.0.1:{server.port}", "--num-prompts", str(n),
                          "--input-len", str(args.input_len), "--output-len", str(args.output_len),
                          "--max-concurrency", str(concurrency), "--no-progress", "--metric-percentiles", "50,99"],
                         capture_output=True, text=True, timeout=600)
    print(f"-- {server.label}, concurrency {concurrency}, {n} requests", flush=True)
    print(out.stdout.strip() or out.stderr.strip()[-2000:], flush=True)


def run_benches(label, flags):
    try:
        s = Server(label, flags)
    except RuntimeError as e:
        print(f"FAIL {e}")
        return
    try:
        bench(s, 1, prompts=2)  # warm-up: first prefill shapes, graph captures
        for c in [int(x) for x in args.concurrency.split(",")]:
            bench(s, c)
    finally:
        s.stop()


if not args.skip_single:
    run_benches("1 rank", ["--device", devices[0]])
if not args.skip_ep:
    run_benches(f"DP/EP {len(devices)}", ["--data-parallel-size", str(len(devices)), "--enable-expert-parallel", *placement])

if not args.skip_elastic:
    try:
        s = Server(f"elastic 1 -> {len(devices)} -> 1", ["--data-parallel-size", "1", "--enable-expert-parallel",
                                                          "--enable-elastic-ep", *placement,
                                                          "--scale-timeout", "120"])
    except RuntimeError as e:
        print(f"FAIL {e}")
        sys.exit(1)
    try:
        load = threading.Thread(target=bench, args=(s, 8, 64), daemon=True)
        load.start()
        time.sleep(5)
        for n in (len(devices), 1):
            t0 = time.time()
            code, text = post(s.port, "/scale_elastic_ep", {"new_data_parallel_size": n})
            print(f"scale to {n}: HTTP {code} in {time.time() - t0:.2f} s: {text[:300]}", flush=True)
            time.sleep(3)
        load.join(timeout=600)
        status = json.loads(get(s.port, "/elastic_ep/status"))
        for e in status.get("events", []):
            phases = ", ".join(f"{k} {v:.3f}" for k, v in e.get("phases", {}).items())
            print(f"resize {e.get('from')} -> {e.get('to')}: {e.get('outcome')} in {e.get('total_seconds', 0):.3f} s; "
                  f"{e.get('bytes_moved', 0) / 1e9:.2f} GB moved; experts checked {e.get('experts_checked')}, "
                  f"mismatches {e.get('expert_mismatches')}; phases: {phases}", flush=True)
        metrics = get(s.port, "/metrics")
        print("\n".join(l for l in metrics.splitlines() if l.startswith("ebb:elastic")))
    finally:
        s.stop()
