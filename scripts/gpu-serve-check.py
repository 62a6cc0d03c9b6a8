#!/usr/bin/env python3
"""Serves each f32 tiny fixture with `ebb serve --device cuda --dtype f32` and checks, over
HTTP with only the standard library, that 16 concurrent greedy completions (each fixture
prompt 4 times) return the transformers reference tokens. For GPU hosts without pytest or
the openai client. Usage: gpu-serve-check.py EBB_BINARY FIXTURES_DIR [extra serve flags...],
e.g. `--data-parallel-size 2 --enable-expert-parallel` on a host with two GPUs."""
import json, socket, subprocess, sys, time, urllib.request
from concurrent.futures import ThreadPoolExecutor

ebb, fixtures, extra = sys.argv[1], sys.argv[2], sys.argv[3:]
failures = 0


def post(port, path, body, timeout=120):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.load(r)


for name in ["qwen3-moe-tiny-f32", "mixtral-tiny-f32", "deepseek-v3-tiny-f32"]:
    ref = json.load(open(f"{fixtures}/{name}/reference.json"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([ebb, "serve", "--model", f"{fixtures}/{name}", "--port", str(port), "--device", "cuda",
                             "--dtype", "f32", "--kv-cache-memory", "256MiB", *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        for _ in range(480):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except Exception:
                if proc.poll() is not None:
                    break
                time.sleep(0.5)

        def one(i):
            p = i % len(ref["prompts"])
            n = len(ref["greedy_new_tokens"][p])
            r = post(port, "/v1/completions", {"model": f"{fixtures}/{name}", "prompt": ref["prompts"][p], "max_tokens": n,
                                               "temperature": 0, "logprobs": 0, "ignore_eos": True,
                                               "return_tokens_as_token_ids": True})
            got = [int(t.split(":")[1]) for t in r["choices"][0]["logprobs"]["tokens"]]
            return got == ref["greedy_new_tokens"][p]

        with ThreadPoolExecutor(16) as pool:
            ok = list(pool.map(one, range(16)))
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        flags = " ".join(extra)
        print(f"{'ok  ' if all(ok) else 'FAIL'} {name} served on cuda (f32{', ' + flags if flags else ''}): {sum(ok)}/16 concurrent greedy completions match transformers")
        failures += 0 if all(ok) else 1
    except Exception as e:
        print(f"FAIL {name}: {e}")
        failures += 1
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0].decode(errors="replace")
        print("  log: " + " | ".join(l for l in out.splitlines() if "KV cache" in l or "graph" in l or "ready:" in l or "NCCL" in l or "error" in l.lower())[:1600])
print("ALL PASSED" if failures == 0 else f"{failures} FAILED")
sys.exit(1 if failures else 0)
