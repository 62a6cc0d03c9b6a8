"""Who may call what (issue 14): `--api-key` guards the model routes as vLLM's does, and
`--admin-api-key` the routes that change the deployment; the user key does not open those.
A refused request gets 401 (or 403 for the user key on an admin route) in OpenAI's error
shape and changes nothing; `/health` and `/metrics` stay open."""

from __future__ import annotations

import subprocess

import openai
import pytest

from conftest import running_server

FLAGS = ["--data-parallel-size", "2", "--enable-expert-parallel", "--enable-elastic-ep",
         "--kv-cache-memory", "16MiB", "--api-key", "user-key", "--admin-api-key", "admin-key"]
USER = {"Authorization": "Bearer user-key"}
ADMIN = {"Authorization": "Bearer admin-key"}


def generation(server) -> int:
    r = server.request("GET", "/elastic_ep/status", timeout=10, headers=USER)
    assert r.status == 200, r.text
    return r.json()["generation"]


def test_keys_guard_the_model_and_the_deployment(start_server, ebb_bin):
    with running_server(start_server, "builtin:tiny-moe", *FLAGS) as server:
        assert server.request("GET", "/health").status == 200
        assert server.request("GET", "/metrics").status == 200

        # The model routes: no key or a wrong one is refused with OpenAI's error, the user key works.
        with pytest.raises(openai.AuthenticationError) as refused:
            server.client().completions.create(model="builtin:tiny-moe", prompt="hi", max_tokens=2)
        assert "incorrect API key" in str(refused.value)
        r = server.request("POST", "/v1/completions", {"model": "builtin:tiny-moe", "prompt": "hi", "max_tokens": 2})
        assert r.status == 401 and r.json()["error"]["type"] == "AuthenticationError", r.text
        from openai import OpenAI
        ok = OpenAI(base_url=server.url("/v1"), api_key="user-key", max_retries=0)
        out = ok.completions.create(model="builtin:tiny-moe", prompt="hi", max_tokens=3, temperature=0)
        assert out.usage.completion_tokens == 3

        # Resizes: the user key is not enough, and a refused resize changes nothing.
        before = generation(server)
        assert server.request("POST", "/scale_elastic_ep", {"new_data_parallel_size": 3}).status == 401
        r = server.request("POST", "/scale_elastic_ep", {"new_data_parallel_size": 3}, headers=USER)
        assert r.status == 403 and r.json()["error"]["type"] == "PermissionDeniedError", r.text
        assert generation(server) == before
        r = server.request("POST", "/scale_elastic_ep", {"new_data_parallel_size": 3}, timeout=120, headers=ADMIN)
        assert r.status == 200, r.text
        assert generation(server) == before + 1

        # `ebb scale` sends the admin key.
        done = subprocess.run([str(ebb_bin), "scale", "--url", server.base_url, "--to", "2", "--api-key", "admin-key"],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        assert generation(server) == before + 2
        server.assert_alive()
