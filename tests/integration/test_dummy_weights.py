"""`--load-format dummy`: serving a bare config.json (random weights, byte-level tokenizer)
on one rank and under expert parallelism, as the GPU benchmarks do; and the option errors."""
import shutil
import subprocess

import pytest

from conftest import ebb_bin_path, free_port, require_fixture


@pytest.fixture
def bare_config(tmp_path):
    """A directory holding only a fixture's config.json (no weights, no tokenizer)."""
    shutil.copy(require_fixture("qwen3-moe-tiny-f32") / "config.json", tmp_path / "config.json")
    return tmp_path


@pytest.mark.parametrize("flags", [(), ("--data-parallel-size", "2", "--enable-expert-parallel")])
def test_bare_config_serves_with_dummy_weights(start_server, bare_config, flags):
    server = start_server(str(bare_config), "--load-format", "dummy", "--num-layers", "1",
                          "--kv-cache-memory", "16MiB", *flags)
    try:
        model = server.request("GET", "/v1/models").json()["data"][0]["id"]
        r = server.request("POST", "/v1/completions", {"model": model, "prompt": "hello", "max_tokens": 5,
                                                       "ignore_eos": True, "temperature": 0})
        assert r.status == 200, r.text
        assert r.json()["usage"]["completion_tokens"] == 5
        if not flags:
            assert "(dummy weights, 1 layers)" in server.log_text()
    finally:
        server.stop()


@pytest.mark.parametrize("args, message", [
    (["--num-layers", "1"], "--num-layers needs --load-format dummy"),
    (["--load-format", "dummy", "--num-layers", "0"], "--num-layers must be in 1..."),
    (["--load-format", "random"], "random"),
])
def test_bad_weight_options_are_refused(args, message):
    model = str(require_fixture("qwen3-moe-tiny-f32"))
    out = subprocess.run([str(ebb_bin_path()), "serve", "--model", model, "--port", str(free_port()), *args],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert message in out.stderr + out.stdout
