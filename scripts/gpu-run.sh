#!/usr/bin/env bash
# Runs on the GPU host from the repository root, after scripts/gpu-stage.sh (with
# EBB_STAGE_PACK=1) staged gpu-stage/: unpacks, runs the parity self-test, then the
# forward and engine benchmarks and the served integration tests. Logs go to $OUT (or ./gpu-logs).
# Usage: scripts/gpu-run.sh [all|selftest|bench|qwen|deepseek|engine|serve|nccl|elastic|recovery|epbench|prefill|kernels|servetable]
set -uo pipefail
what=${1:-all}
for arg in "$@"; do :; done
out=${OUT:-gpu-logs}
mkdir -p "$out"
if [ -f gpu-stage/pack/ebb-gpu.tar.xz ] && [ ! -x gpu-stage/bin/ebb ]; then
    tar -xJf gpu-stage/pack/ebb-gpu.tar.xz -C gpu-stage || python3 -c "import tarfile; tarfile.open('gpu-stage/pack/ebb-gpu.tar.xz').extractall('gpu-stage')"
fi
export LD_LIBRARY_PATH=$PWD/gpu-stage/lib
export EBB_CUDA_CACHE_DIR=${EBB_CUDA_CACHE_DIR:-/tmp/ebb-cuda-cache}
# CUDA libraries the loader does not find by itself (pip wheels, toolkits off the path).
if [ -z "${EBB_CUDA_LIB_DIR:-}" ]; then
    dirs=$(find /usr/local /opt /usr/lib -maxdepth 7 \( -name 'libnvrtc.so.1[23]' -o -name 'libcublas.so.1[23]' -o -name 'libnccl.so.2' \) 2>/dev/null | xargs -r -n1 dirname | sort -u | paste -sd:)
    export EBB_CUDA_LIB_DIR=$dirs
fi
echo "EBB_CUDA_LIB_DIR=$EBB_CUDA_LIB_DIR"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv,noheader 2>&1 | head -2
ebb=gpu-stage/bin/ebb
if [ "$what" = selftest ] || [ "$what" = all ]; then
    timeout 300 $ebb selftest-cuda --fixtures gpu-stage/fixtures 2>&1 | tee "$out/selftest.log"
fi
case "$what" in all|bench|qwen) qwen=1 ;; *) qwen=0 ;; esac
case "$what" in all|bench|deepseek) deepseek=1 ;; *) deepseek=0 ;; esac
if [ "$qwen" = 1 ]; then
    timeout 240 $ebb bench forward --device cuda --load-format dummy --model gpu-stage/fixtures/configs/Qwen__Qwen3-30B-A3B \
        --prompt-length 2048 --context 1024 --batch-sizes 1 8 32 128 256 --decode-steps 20 ${EBB_BENCH_ARGS:-} 2>&1 | tee "$out/bench-qwen3-30b.log"
fi
if [ "$deepseek" = 1 ]; then
    timeout 200 $ebb bench forward --device cuda --load-format dummy --num-layers 5 --model gpu-stage/fixtures/configs/deepseek-ai__DeepSeek-V3 \
        --prompt-length 2048 --context 1024 --batch-sizes 1 8 32 128 256 --decode-steps 20 ${EBB_BENCH_ARGS:-} 2>&1 | tee "$out/bench-deepseek-v3-5l.log"
fi
if [ "$what" = all ] || [ "$what" = bench ] || [ "$what" = qwen ]; then
    # The same decode rows through cuBLAS's classic entry point, to compare with cuBLASLt.
    EBB_CUDA_GEMM=cublas timeout 200 $ebb bench forward --device cuda --load-format dummy --model gpu-stage/fixtures/configs/Qwen__Qwen3-30B-A3B \
        --prompt-length 2048 --context 1024 --batch-sizes 1 128 --decode-steps 20 2>&1 | tee "$out/bench-qwen3-30b-cublas.log"
fi
if [ "$what" = prefill ]; then
    # Prefill attention on tensor cores against the CUDA-core kernel (same binary), then a
    # profile of the tensor-core prefill.
    # (The first run also measures every decode batch.)
    for mode in tensor-cores cuda-cores; do
        batches="1"; [ $mode = tensor-cores ] && batches="1 8 32 128 256"
        EBB_CUDA_PREFILL_ATTENTION=$mode timeout 200 $ebb bench forward --device cuda --load-format dummy \
            --model gpu-stage/fixtures/configs/Qwen__Qwen3-30B-A3B --prompt-length 2048 --context 1024 --batch-sizes $batches \
            --decode-steps 20 ${EBB_BENCH_ARGS:-} 2>&1 | tee "$out/prefill-$mode.log"
    done
    timeout 150 $ebb bench forward --device cuda --load-format dummy --model gpu-stage/fixtures/configs/Qwen__Qwen3-30B-A3B \
        --prompt-length 2048 --context 1024 --batch-sizes 1 --decode-steps 5 --profile 2>&1 | tee "$out/prefill-profile.log" | tail -40
fi
if [ "$what" = kernels ]; then
    # Issue 13's kernels: op parity, then the Qwen3 shape (decode through gemv_rows and
    # through cuBLAS, to compare), the per-kernel profile of prefill and of a batch-1 decode
    # step, and the DeepSeek-V3 shape.
    timeout 300 $ebb selftest-cuda --fixtures gpu-stage/fixtures > "$out/selftest.log" 2>&1
    grep -E "FAIL|mismatch|passed|failed|checks" "$out/selftest.log" | tail -15
    timeout 200 $ebb bench kernels 2>&1 | tee "$out/bench-kernels.log"
    qwen="--model gpu-stage/fixtures/configs/Qwen__Qwen3-30B-A3B --prompt-length 2048 --context 1024"
    timeout 200 $ebb bench forward --device cuda --load-format dummy $qwen --batch-sizes ${EBB_QWEN_BATCHES:-1 8 32} \
        --decode-steps 20 2>&1 | tee "$out/bench-qwen3-30b.log" | tail -n 14
    EBB_CUDA_DECODE_GEMV=cublas timeout 150 $ebb bench forward --device cuda --load-format dummy $qwen --batch-sizes 1 8 \
        --decode-steps 20 2>&1 | tee "$out/bench-qwen3-30b-cublas.log" | tail -n 8
    timeout 150 $ebb bench forward --device cuda --load-format dummy $qwen --batch-sizes 1 --decode-steps 5 --profile \
        > "$out/profile-qwen3-30b.log" 2>&1
    timeout 200 $ebb bench forward --device cuda --load-format dummy --num-layers 5 --model gpu-stage/fixtures/configs/deepseek-ai__DeepSeek-V3 \
        --prompt-length 2048 --context 1024 --batch-sizes ${EBB_DEEPSEEK_BATCHES:-1 8 32 128} --decode-steps 20 2>&1 \
        | tee "$out/bench-deepseek-v3-5l.log" | tail -n 14
fi
if [ "$what" = all ] || [ "$what" = engine ]; then
    # The engine core (scheduler + sampling + decode graphs) on the same shape, graphs vs eager.
    timeout 300 $ebb bench engine --device cuda --load-format dummy --model gpu-stage/fixtures/configs/Qwen__Qwen3-30B-A3B \
        --batch-sizes 1 8 32 128 --input-len 512 --output-len 64 --compare-eager 2>&1 | tee "$out/bench-engine-qwen3-30b.log"
fi
if [ "$what" = all ] || [ "$what" = serve ]; then
    # The HTTP integration tests that serve one rank, against `ebb serve --device cuda --dtype f32`.
    if python3 -c "import pytest, openai" 2>/dev/null; then
        EBB_BIN=$PWD/$ebb EBB_FIXTURES=$PWD/gpu-stage/fixtures EBB_SERVE_EXTRA_ARGS="--device cuda --dtype f32" \
            timeout 400 python3 -m pytest -q -x tests/integration/test_openai_basics.py tests/integration/test_batch_invariance.py 2>&1 | tail -30 | tee "$out/serve-tests.log"
    else
        echo "no pytest/openai here: checking over HTTP with urllib instead" | tee "$out/serve-tests.log"
        python3 scripts/gpu-serve-check.py $ebb gpu-stage/fixtures 2>&1 | tee -a "$out/serve-tests.log"
    fi
fi
if [ "$what" = nccl ]; then
    # Expert parallelism over NCCL with every rank on GPU 0 (distinct NCCL_HOSTIDs: socket
    # transport): greedy parity of the f32 fixtures at DP 2 and 4, then resizes under load.
    timeout 150 $ebb selftest-cuda --fixtures gpu-stage/fixtures 2>&1 | grep -E "expertExchange|combinePairs|scatterRows|rebaseSlots|maskPairs|countSlots|transfer lane|NCCL|passed|failed|FAIL" | tee "$out/selftest-nccl.log"
    for n in 2 4; do
        devs=$(printf 'cuda:0,%.0s' $(seq $n)); devs=${devs%,}
        timeout 200 python3 scripts/gpu-serve-check.py $ebb gpu-stage/fixtures --data-parallel-size $n --enable-expert-parallel \
            --devices "$devs" 2>&1 | tee "$out/serve-nccl-dp$n.log"
    done
fi
if [ "$what" = nccl ] || [ "$what" = elastic ]; then
    # Resizes under load with every rank on GPU 0 (the HTTP tests, their server logs kept).
    if [ -d .whl ]; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
    fi
    # Thread states of the engine cores a minute in (kernel wait channels), in case a resize hangs.
    (sleep 70; for p in $(pgrep -f "ebb engine-core"); do echo "== pid $p"; for t in /proc/$p/task/*; do
        echo "$(cat $t/comm 2>/dev/null) $(cat $t/wchan 2>/dev/null) $(cut -d' ' -f3 $t/stat 2>/dev/null)"; done; done > "$out/threads.log" 2>&1) &
    EBB_BIN=$PWD/$ebb EBB_FIXTURES=$PWD/gpu-stage/fixtures \
        EBB_SERVE_EXTRA_ARGS="--dtype f32 --devices cuda:0,cuda:0,cuda:0,cuda:0,cuda:0 --gpu-memory-utilization 0.12" \
        timeout 300 python3 -m pytest -q -x --basetemp="$out/pytest" "tests/integration/test_elastic.py::test_schedule_under_load_keeps_outputs" \
        "tests/integration/test_elastic.py::test_injected_failure_rolls_back" > "$out/elastic-nccl-full.log" 2>&1
    tail -30 "$out/elastic-nccl-full.log" | tee "$out/elastic-nccl.log"
fi
if [ "$what" = epbench ]; then
    # Qwen3-30B-A3B shapes with dummy weights: decode at 1/8/32 concurrent streams on one
    # rank, then DP/EP 2 with both ranks on GPU 0 (NCCL), then 1 -> 2 -> 1 under load.
    timeout 560 python3 scripts/gpu-ep-bench.py $ebb gpu-stage/fixtures/configs/Qwen__Qwen3-30B-A3B \
        --devices cuda:0,cuda:0 ${EBB_EPBENCH_ARGS:-} 2>&1 | tee "$out/ep-bench-qwen3-30b.log"
fi
if [ "$what" = servetable ]; then
    # Issue 13's serving table: the whole server on one rank, Qwen3-30B-A3B shape with dummy
    # weights, 1024-token prompts and 256-token outputs at several concurrencies.
    timeout 560 python3 scripts/gpu-ep-bench.py $ebb gpu-stage/fixtures/configs/Qwen__Qwen3-30B-A3B --devices cuda:0 \
        --skip-ep --skip-elastic --input-len 1024 --output-len 256 --concurrency ${EBB_SERVE_CONCURRENCY:-1,16,64} \
        --requests-per-concurrency 2 --kv-cache-memory ${EBB_SERVE_KV:-10GiB} 2>&1 | tee "$out/serve-table-qwen3-30b.log"
fi
if [ "$what" = recovery ]; then
    # Lost ranks on GPU ranks that share GPU 0: kill -9 under load, recovery over NCCL, the
    # replacement joining on the same GPU; thread states and GPU processes every 40 s.
    if [ -d .whl ]; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
    fi
    # EBB_STACK_SAMPLES=N (default 0) samples thread states N times; with a debugger it stops
    # each process while it reads its stacks, which stalls the ranks (docs/gpu.md): only for hangs.
    # The image has cuda-gdb (no gdb); it attaches to any process. Stacks name functions when
    # the staged binary keeps its symbol table (objcopy --strip-debug instead of strip).
    debugger=$(command -v gdb || command -v cuda-gdb || ls /usr/local/cuda*/bin/cuda-gdb 2>/dev/null | head -1)
    (for i in $(seq 1 ${EBB_STACK_SAMPLES:-0}); do sleep ${EBB_STACK_INTERVAL:-40}; echo "=== sample $i"; nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader
        for p in $(pgrep -f "ebb engine-core"); do echo "== pid $p"; for t in /proc/$p/task/*; do
        echo "$(cat $t/comm 2>/dev/null) $(cat $t/wchan 2>/dev/null) $(cut -d' ' -f3 $t/stat 2>/dev/null)"; done
        if [ -n "$debugger" ]; then timeout 60 "$debugger" -batch -p $p -ex "thread apply all bt 14" 2>&1 | grep -E "^Thread|^#" | cut -c1-400 | head -220; fi
        done; done > "$out/threads-recovery.log" 2>&1) &
    EBB_BIN=$PWD/$ebb EBB_FIXTURES=$PWD/gpu-stage/fixtures \
        EBB_SERVE_EXTRA_ARGS="--dtype f32 --devices cuda:0,cuda:0,cuda:0,cuda:0 --gpu-memory-utilization 0.1" \
        timeout ${EBB_RECOVERY_TIMEOUT:-420} python3 -m pytest -q --basetemp="$out/pytest-recovery" \
        ${EBB_RECOVERY_TESTS:-"tests/integration/test_rank_failure.py::test_without_replacement_the_deployment_stays_smaller_then_resizes" \
        "tests/integration/test_rank_failure.py::test_seeded_sampling_continues_identically_after_a_kill" \
        "tests/integration/test_rank_failure.py::test_rank_zero_middle_and_last_rank_killed_under_load[qwen3-moe-tiny-f32]"} \
        > "$out/recovery-full.log" 2>&1
    tail -40 "$out/recovery-full.log"
fi
