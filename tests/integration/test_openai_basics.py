"""The OpenAI Python client against `ebb serve` on the qwen3-moe tiny f32 fixture."""

from __future__ import annotations

import math

import pytest

from conftest import load_reference, metric_sum, require_fixture

FIXTURE = "qwen3-moe-tiny-f32"
GREEDY = {"temperature": 0}
IGNORE_EOS = {"ignore_eos": True}


@pytest.fixture(scope="module")
def server(start_server):
    s = start_server(FIXTURE, "--kv-cache-memory", "64MiB")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(server):
    return server.client()


@pytest.fixture(scope="module")
def model(client):
    return client.models.list().data[0].id


@pytest.fixture(scope="module")
def reference():
    return load_reference(require_fixture(FIXTURE))


def ids_of(tokens: list[str]) -> list[int]:
    out = []
    for t in tokens:
        assert t.startswith("token_id:"), f"return_tokens_as_token_ids gave {t!r}, not 'token_id:N'"
        out.append(int(t[len("token_id:"):]))
    return out


def greedy_ids(client, model, prompt, n_tokens: int, **extra) -> list[int]:
    r = client.completions.create(model=model, prompt=prompt, max_tokens=n_tokens, temperature=0, logprobs=0,
                                  extra_body={"return_tokens_as_token_ids": True, "ignore_eos": True, **extra})
    return ids_of(r.choices[0].logprobs.tokens)


# Models, health, version, tokenize -------------------------------------------------------

def test_models_list(client, server):
    models = client.models.list()
    assert len(models.data) == 1
    m = models.data[0]
    assert m.id == server.model
    assert m.object == "model"
    assert isinstance(m.created, int)


def test_health_and_version(server):
    assert server.request("GET", "/health", timeout=10).status == 200
    r = server.request("GET", "/version", timeout=10)
    assert r.status == 200
    assert isinstance(r.json()["version"], str) and r.json()["version"]


def test_tokenize_detokenize_round_trip(server, client, model):
    text = "Hello, world! The quick brown fox jumps over the lazy dog. 1234 \u00e9t\u00e9 \u4f60\u597d"
    body = server.post_json("/tokenize", {"model": model, "prompt": text})
    tokens = body["tokens"]
    assert body["count"] == len(tokens) > 0
    assert all(isinstance(t, int) for t in tokens)
    assert server.post_json("/detokenize", {"model": model, "tokens": tokens})["prompt"] == text
    # The token count agrees with what a completion reports as prompt usage.
    c = client.completions.create(model=model, prompt=text, max_tokens=1, temperature=0)
    assert c.usage.prompt_tokens == len(tokens)
    # /tokenize of chat messages counts what the chat endpoint reports.
    messages = [{"role": "user", "content": "What is 2+2?"}]
    count = server.post_json("/tokenize", {"model": model, "messages": messages})["count"]
    chat = client.chat.completions.create(model=model, messages=messages, max_completion_tokens=1, temperature=0)
    assert chat.usage.prompt_tokens == count


# Completions -----------------------------------------------------------------------------

def test_completion_token_prompt_matches_reference(client, model, reference):
    for prompt, expected in zip(reference["prompts"], reference["greedy_new_tokens"]):
        got = greedy_ids(client, model, prompt, len(expected))
        assert got == expected, f"greedy tokens for prompt {prompt[:8]}… differ from HF transformers"


def test_completion_string_prompt(client, model):
    r = client.completions.create(model=model, prompt="Hello, world!", max_tokens=6, temperature=0,
                                  extra_body=IGNORE_EOS)
    assert r.object == "text_completion"
    assert r.model == model
    assert len(r.choices) == 1
    c = r.choices[0]
    assert c.index == 0
    assert isinstance(c.text, str) and c.text
    assert c.finish_reason == "length"
    assert r.usage.completion_tokens == 6
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    # Greedy decoding is deterministic and the same through a token-id prompt.
    again = client.completions.create(model=model, prompt="Hello, world!", max_tokens=6, temperature=0,
                                      extra_body=IGNORE_EOS)
    assert again.choices[0].text == c.text


def test_completion_string_equals_token_prompt(server, client, model):
    text = "The quick brown fox"
    tokens = server.post_json("/tokenize", {"prompt": text})["tokens"]
    a = client.completions.create(model=model, prompt=text, max_tokens=8, temperature=0, extra_body=IGNORE_EOS)
    b = client.completions.create(model=model, prompt=tokens, max_tokens=8, temperature=0, extra_body=IGNORE_EOS)
    assert a.choices[0].text == b.choices[0].text
    assert a.usage.prompt_tokens == b.usage.prompt_tokens == len(tokens)


def test_completion_multiple_prompts(client, model, reference):
    prompts = reference["prompts"][:3]
    r = client.completions.create(model=model, prompt=prompts, max_tokens=24, temperature=0, logprobs=0,
                                  extra_body={"return_tokens_as_token_ids": True, "ignore_eos": True})
    assert [c.index for c in r.choices] == [0, 1, 2]
    for c, expected in zip(r.choices, reference["greedy_new_tokens"][:3]):
        assert ids_of(c.logprobs.tokens) == expected
    assert r.usage.prompt_tokens == sum(len(p) for p in prompts)
    assert r.usage.completion_tokens == 3 * 24


def test_completion_streaming_with_usage(client, model, reference):
    prompt = reference["prompts"][1]
    full = client.completions.create(model=model, prompt=prompt, max_tokens=12, temperature=0, extra_body=IGNORE_EOS)
    stream = client.completions.create(model=model, prompt=prompt, max_tokens=12, temperature=0, stream=True,
                                       stream_options={"include_usage": True}, extra_body=IGNORE_EOS)
    text, finish, usage, content_chunks = "", None, None, 0
    for chunk in stream:
        if chunk.usage is not None:
            assert chunk.choices == [], "the usage chunk carries no choices"
            usage = chunk.usage
            continue
        assert len(chunk.choices) == 1
        content_chunks += 1
        text += chunk.choices[0].text
        if chunk.choices[0].finish_reason is not None:
            assert finish is None, "finish_reason sent twice"
            finish = chunk.choices[0].finish_reason
    assert content_chunks >= 2, "a 12-token completion should stream in several chunks"
    assert text == full.choices[0].text
    assert finish == "length"
    assert usage is not None, "stream_options.include_usage must produce a usage chunk"
    assert usage.prompt_tokens == len(prompt)
    assert usage.completion_tokens == 12
    assert usage.total_tokens == len(prompt) + 12


def test_completion_streaming_without_usage(client, model):
    stream = client.completions.create(model=model, prompt="Hi", max_tokens=4, temperature=0, stream=True,
                                       extra_body=IGNORE_EOS)
    chunks = list(stream)
    assert chunks
    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "length"


def test_completion_echo(client, model):
    prompt = "Once upon a time"
    r = client.completions.create(model=model, prompt=prompt, max_tokens=4, temperature=0, echo=True,
                                  extra_body=IGNORE_EOS)
    plain = client.completions.create(model=model, prompt=prompt, max_tokens=4, temperature=0, extra_body=IGNORE_EOS)
    assert r.choices[0].text == prompt + plain.choices[0].text


def test_completion_echo_streaming(client, model):
    prompt = "Once upon a time"
    plain = client.completions.create(model=model, prompt=prompt, max_tokens=4, temperature=0, extra_body=IGNORE_EOS)
    stream = client.completions.create(model=model, prompt=prompt, max_tokens=4, temperature=0, echo=True,
                                       stream=True, extra_body=IGNORE_EOS)
    text = "".join(c.choices[0].text for c in stream if c.choices)
    assert text == prompt + plain.choices[0].text


def check_completion_logprobs(lp, n_tokens: int, top_n: int, first_null: bool = False):
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == n_tokens
    assert all(isinstance(t, str) for t in lp.tokens)
    assert lp.text_offset == sorted(lp.text_offset), "text_offset must be non-decreasing"
    for i, (tok, logprob, top) in enumerate(zip(lp.tokens, lp.token_logprobs, lp.top_logprobs)):
        if first_null and i == 0:
            assert logprob is None and top is None, "the first prompt token has no logprob"
            continue
        assert isinstance(logprob, float) and logprob <= 0 and math.isfinite(logprob)
        assert isinstance(top, dict)
        # vLLM: the top-N alternatives plus the sampled token when it is not among them.
        assert top_n <= len(top) <= top_n + 1, f"top_logprobs[{i}] has {len(top)} entries for logprobs={top_n}"
        assert tok in top
        assert all(v <= 0 for v in top.values())
        values = sorted(top.values(), reverse=True)
        assert values[0] >= logprob - 1e-5
        if len(top) == top_n + 1:
            # The sampled token is the extra entry: every alternative is at least as likely.
            assert min(v for k, v in top.items() if k != tok) >= logprob - 1e-5


def test_completion_logprobs_shapes(client, model):
    r = client.completions.create(model=model, prompt="The capital of France is", max_tokens=5, temperature=0,
                                  logprobs=3, extra_body=IGNORE_EOS)
    lp = r.choices[0].logprobs
    check_completion_logprobs(lp, 5, 3)
    # Greedy: the sampled token is the most likely one.
    for tok, logprob, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        assert logprob >= max(top.values()) - 1e-4
    # text_offset starts at 0 and advances by each token's text length.
    assert lp.text_offset[0] == 0
    for i in range(1, 5):
        assert lp.text_offset[i] == lp.text_offset[i - 1] + len(lp.tokens[i - 1])


def test_completion_logprobs_with_echo(client, model):
    prompt = [42, 557, 336, 14, 312]
    r = client.completions.create(model=model, prompt=prompt, max_tokens=3, temperature=0, logprobs=2, echo=True,
                                  extra_body={"ignore_eos": True, "return_tokens_as_token_ids": True})
    lp = r.choices[0].logprobs
    check_completion_logprobs(lp, len(prompt) + 3, 2, first_null=True)
    assert ids_of(lp.tokens)[: len(prompt)] == prompt


def test_completion_logprobs_streaming_matches(client, model):
    kwargs = dict(model=model, prompt=[42, 557, 336], max_tokens=6, temperature=0, logprobs=1,
                  extra_body={"ignore_eos": True, "return_tokens_as_token_ids": True})
    full = client.completions.create(**kwargs)
    tokens, logprobs = [], []
    for chunk in client.completions.create(stream=True, **kwargs):
        for c in chunk.choices:
            if c.logprobs is not None:
                tokens += c.logprobs.tokens
                logprobs += c.logprobs.token_logprobs
    assert tokens == full.choices[0].logprobs.tokens
    assert logprobs == pytest.approx(full.choices[0].logprobs.token_logprobs, abs=1e-5)


def test_return_tokens_as_token_ids(client, model):
    r = client.completions.create(model=model, prompt="Hello", max_tokens=4, temperature=0, logprobs=2,
                                  extra_body={"ignore_eos": True, "return_tokens_as_token_ids": True})
    lp = r.choices[0].logprobs
    ids = ids_of(lp.tokens)
    assert all(0 <= i < 2048 for i in ids)
    for top in lp.top_logprobs:
        ids_of(list(top.keys()))
    # Chat too.
    c = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hi"}],
                                       max_completion_tokens=3, temperature=0, logprobs=True, top_logprobs=2,
                                       extra_body={"ignore_eos": True, "return_tokens_as_token_ids": True})
    for item in c.choices[0].logprobs.content:
        ids_of([item.token])
        ids_of([t.token for t in item.top_logprobs])


def test_n_with_seed(client, model):
    kwargs = dict(model=model, prompt="Tell me a story", max_tokens=16, temperature=1.0, n=2, seed=1234,
                  extra_body=IGNORE_EOS)
    a = client.completions.create(**kwargs)
    b = client.completions.create(**kwargs)
    assert sorted(c.index for c in a.choices) == [0, 1]
    assert [c.text for c in sorted(a.choices, key=lambda c: c.index)] == \
        [c.text for c in sorted(b.choices, key=lambda c: c.index)], "a seeded request must be reproducible"
    texts = [c.text for c in a.choices]
    assert texts[0] != texts[1], "the n=2 choices of one seeded request should be different samples"
    assert a.usage.completion_tokens == 32
    assert a.usage.prompt_tokens == b.usage.prompt_tokens
    c = client.completions.create(**{**kwargs, "seed": 4321})
    assert [x.text for x in c.choices] != texts, "a different seed should give different samples"


def test_n_streaming(client, model):
    stream = client.completions.create(model=model, prompt="Tell me a story", max_tokens=5, n=2, seed=7,
                                       stream=True, stream_options={"include_usage": True}, extra_body=IGNORE_EOS)
    texts, finishes, usage = {0: "", 1: ""}, {}, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            texts[c.index] += c.text
            if c.finish_reason:
                finishes[c.index] = c.finish_reason
    assert finishes == {0: "length", 1: "length"}
    assert usage.completion_tokens == 10
    full = client.completions.create(model=model, prompt="Tell me a story", max_tokens=5, n=2, seed=7,
                                     extra_body=IGNORE_EOS)
    assert texts == {c.index: c.text for c in full.choices}


def test_default_max_tokens_is_16(client, model):
    """OpenAI and vLLM default `max_tokens` to 16 on /v1/completions."""
    stream = client.completions.create(model=model, prompt=[42, 557, 336], temperature=0, logprobs=0, stream=True,
                                       extra_body={"ignore_eos": True, "return_tokens_as_token_ids": True})
    count = 0
    try:
        for chunk in stream:
            for c in chunk.choices:
                if c.logprobs is not None:
                    count += len(c.logprobs.tokens)
            if count > 16:
                break
    finally:
        stream.close()
    assert count == 16, (f"SERVER BUG: /v1/completions without max_tokens generated "
                         f"{'more than 16 (stopped reading)' if count > 16 else count} tokens; OpenAI and vLLM default "
                         f"max_tokens to 16 on completions, but GenerationOptions.parse (RequestParsing.swift) leaves "
                         f"it nil, i.e. 'until the context is full'")


# Stops -----------------------------------------------------------------------------------

def test_stop_string_not_in_text(client, model):
    prompt = "Hello, world!"
    base = client.completions.create(model=model, prompt=prompt, max_tokens=24, temperature=0, extra_body=IGNORE_EOS)
    text = base.choices[0].text
    # A 2-character ASCII stop string first occurring somewhere past the start.
    stop = None
    for i in range(3, len(text) - 2):
        s = text[i:i + 2]
        if s.isascii() and s.strip() and s.isprintable() and text.find(s) == i:
            stop = s
            break
    assert stop is not None, f"no usable stop string in {text!r}"
    r = client.completions.create(model=model, prompt=prompt, max_tokens=24, temperature=0, stop=[stop],
                                  extra_body=IGNORE_EOS)
    c = r.choices[0]
    assert c.finish_reason == "stop"
    assert stop not in c.text
    assert c.text == text[: text.index(stop)]
    assert getattr(c, "stop_reason", None) == stop  # vLLM's extension field
    # Streaming gives the same text and never leaks the stop string.
    stream = client.completions.create(model=model, prompt=prompt, max_tokens=24, temperature=0, stop=stop,
                                       stream=True, extra_body=IGNORE_EOS)
    chunks = list(stream)
    streamed = "".join(ch.choices[0].text for ch in chunks if ch.choices)
    assert streamed == c.text
    assert chunks[-1].choices[0].finish_reason == "stop"
    # include_stop_str_in_output keeps it.
    r = client.completions.create(model=model, prompt=prompt, max_tokens=24, temperature=0, stop=[stop],
                                  extra_body={"ignore_eos": True, "include_stop_str_in_output": True})
    assert r.choices[0].text == text[: text.index(stop) + len(stop)]


def test_stop_token_ids(server, client, model, reference):
    prompt, expected = reference["prompts"][0], reference["greedy_new_tokens"][0]
    k = 4
    stop_id = expected[k]
    assert stop_id not in expected[:k]
    r = client.completions.create(model=model, prompt=prompt, max_tokens=24, temperature=0, logprobs=0,
                                  extra_body={"ignore_eos": True, "stop_token_ids": [stop_id],
                                              "return_tokens_as_token_ids": True})
    c = r.choices[0]
    assert c.finish_reason == "stop"
    assert getattr(c, "stop_reason", None) == stop_id
    assert r.usage.completion_tokens == k + 1
    assert ids_of(c.logprobs.tokens) == expected[: k + 1]
    without_stop = server.post_json("/detokenize", {"tokens": expected[:k]})["prompt"]
    assert c.text == without_stop, "the stop token's text is not part of the output"


def test_stop_token_ids_without_ignore_eos(client, model):
    r = client.completions.create(model=model, prompt=[42, 557, 336, 14, 312, 270, 1453, 3], max_tokens=24,
                                  temperature=0, extra_body={"stop_token_ids": [1395]})
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.completion_tokens == 2


# Chat ------------------------------------------------------------------------------------

MESSAGES = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Name a colour."}]


def check_chat_logprobs(content, n_tokens: int, top_n: int):
    assert len(content) == n_tokens
    for item in content:
        assert isinstance(item.token, str)
        assert item.logprob <= 0
        assert isinstance(item.bytes, list)
        assert len(item.top_logprobs) == top_n
        values = [t.logprob for t in item.top_logprobs]
        assert values == sorted(values, reverse=True), f"top_logprobs not sorted: {values}"
        assert all(v <= 0 for v in values)
        assert values[0] >= item.logprob - 1e-5


def test_chat_non_streaming(client, model):
    r = client.chat.completions.create(model=model, messages=MESSAGES, max_completion_tokens=6, temperature=0,
                                       logprobs=True, top_logprobs=2, extra_body=IGNORE_EOS)
    assert r.object == "chat.completion"
    c = r.choices[0]
    assert c.message.role == "assistant"
    assert isinstance(c.message.content, str)
    assert c.finish_reason == "length"
    assert r.usage.completion_tokens == 6
    assert r.usage.total_tokens == r.usage.prompt_tokens + 6
    check_chat_logprobs(c.logprobs.content, 6, 2)
    # Greedy: the chosen token is the top one.
    for item in c.logprobs.content:
        assert item.logprob >= item.top_logprobs[0].logprob - 1e-4


def test_chat_streaming_matches(client, model):
    full = client.chat.completions.create(model=model, messages=MESSAGES, max_completion_tokens=8, temperature=0,
                                          logprobs=True, top_logprobs=2, extra_body=IGNORE_EOS)
    stream = client.chat.completions.create(model=model, messages=MESSAGES, max_completion_tokens=8, temperature=0,
                                            logprobs=True, top_logprobs=2, stream=True,
                                            stream_options={"include_usage": True}, extra_body=IGNORE_EOS)
    content, roles, finish, usage, lp = "", [], None, None, []
    for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        if chunk.usage is not None:
            usage = chunk.usage
            assert chunk.choices == []
            continue
        for c in chunk.choices:
            if c.delta.role:
                roles.append(c.delta.role)
            content += c.delta.content or ""
            if c.logprobs is not None and c.logprobs.content:
                lp += c.logprobs.content
            if c.finish_reason:
                finish = c.finish_reason
    assert roles == ["assistant"], "the role comes once, in the first delta"
    assert content == full.choices[0].message.content
    assert finish == "length"
    assert usage.completion_tokens == 8 and usage.prompt_tokens == full.usage.prompt_tokens
    check_chat_logprobs(lp, 8, 2)
    assert [i.token for i in lp] == [i.token for i in full.choices[0].logprobs.content]


def test_chat_max_tokens_legacy_field(client, model):
    r = client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=3, temperature=0,
                                       extra_body=IGNORE_EOS)
    assert r.usage.completion_tokens == 3
    assert r.choices[0].finish_reason == "length"


def test_chat_stop(client, model):
    r = client.chat.completions.create(model=model, messages=MESSAGES, max_completion_tokens=4, temperature=0,
                                       logprobs=True, extra_body={"ignore_eos": True, "return_tokens_as_token_ids": True})
    first = int(r.choices[0].logprobs.content[1].token.split(":")[1])
    r2 = client.chat.completions.create(model=model, messages=MESSAGES, max_completion_tokens=4, temperature=0,
                                        extra_body={"ignore_eos": True, "stop_token_ids": [first]})
    assert r2.choices[0].finish_reason == "stop"
    assert r2.usage.completion_tokens <= 2


def test_chat_n_seed(client, model):
    kwargs = dict(model=model, messages=MESSAGES, max_completion_tokens=8, n=2, seed=99, extra_body=IGNORE_EOS)
    a = client.chat.completions.create(**kwargs)
    b = client.chat.completions.create(**kwargs)
    assert [c.message.content for c in a.choices] == [c.message.content for c in b.choices]
    assert a.usage.completion_tokens == 16


# Metrics ---------------------------------------------------------------------------------

def test_metrics(server, client, model):
    before = server.metrics()
    for name in ["ebb:prompt_tokens_total", "ebb:generation_tokens_total", "ebb:num_requests_running",
                 "ebb:num_requests_waiting", "ebb:kv_cache_usage_perc", "ebb:num_preemptions",
                 "ebb:time_to_first_token_seconds_count", "ebb:e2e_request_latency_seconds_count"]:
        assert any(k == name or k.startswith(name + "{") for k in before), f"/metrics lacks {name}"
    text = server.metrics_text()
    assert "# TYPE ebb:generation_tokens_total counter" in text
    assert "# HELP ebb:prompt_tokens_total" in text
    r = client.completions.create(model=model, prompt=[5, 6, 7, 8], max_tokens=7, temperature=0, extra_body=IGNORE_EOS)
    assert r.usage.completion_tokens == 7
    after = server.metrics()
    assert metric_sum(after, "ebb:generation_tokens_total") - metric_sum(before, "ebb:generation_tokens_total") >= 7
    assert metric_sum(after, "ebb:prompt_tokens_total") - metric_sum(before, "ebb:prompt_tokens_total") >= 4
    assert metric_sum(after, "ebb:request_success_total") > metric_sum(before, "ebb:request_success_total")
    assert after["ebb:e2e_request_latency_seconds_count"] > before["ebb:e2e_request_latency_seconds_count"]
    assert after["ebb:num_requests_running"] == 0


def test_completion_top_logprobs_ordered(client, model):
    """vLLM and OpenAI list a token's top_logprobs alternatives most likely first (the dict's
    order is what clients iterate)."""
    r = client.completions.create(model=model, prompt="The capital of France is", max_tokens=4, temperature=0,
                                  logprobs=5, extra_body=IGNORE_EOS)
    for i, top in enumerate(r.choices[0].logprobs.top_logprobs):
        values = list(top.values())
        assert values == sorted(values, reverse=True), (
            f"SERVER BUG (minor): completions top_logprobs[{i}] is not ordered most likely first: {top}; "
            f"the keys come out sorted by name: CompletionsRoute.completionLogprobs builds an unordered "
            f"[String: JSONValue] and JSONWriter (EbbCore) writes object keys sorted")


def test_completion_echo_logprobs_streaming(client, model):
    """Streaming with echo and logprobs: the streamed logprobs cover the echoed prompt too, as
    in the non-streaming answer (vLLM sends the prompt's entries in the first chunk)."""
    kwargs = dict(model=model, prompt=[42, 557, 336, 14], max_tokens=3, temperature=0, logprobs=1, echo=True,
                  extra_body={"ignore_eos": True, "return_tokens_as_token_ids": True})
    full = client.completions.create(**kwargs)
    tokens, text = [], ""
    for chunk in client.completions.create(stream=True, **kwargs):
        for c in chunk.choices:
            text += c.text
            if c.logprobs is not None:
                tokens += c.logprobs.tokens
    assert text == full.choices[0].text
    assert tokens == full.choices[0].logprobs.tokens, (
        f"SERVER BUG: streamed echo+logprobs tokens {tokens} differ from the non-streaming ones "
        f"{full.choices[0].logprobs.tokens}: the streaming path (CompletionsRoute.completions, stream branch) "
        f"prepends the prompt text but not the prompt's logprob entries")


def test_multiple_prompts_with_n_streaming(client, model):
    kwargs = dict(model=model, prompt=["alpha beta", "gamma"], max_tokens=4, temperature=0, n=2,
                  extra_body=IGNORE_EOS)
    full = client.completions.create(**kwargs)
    assert sorted(c.index for c in full.choices) == [0, 1, 2, 3]
    by_index = {c.index: c.text for c in full.choices}
    assert by_index[0] == by_index[1] and by_index[2] == by_index[3]
    texts, usage = {}, None
    for chunk in client.completions.create(stream=True, stream_options={"include_usage": True}, **kwargs):
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            texts[c.index] = texts.get(c.index, "") + c.text
    assert texts == by_index
    assert usage.completion_tokens == 16 == full.usage.completion_tokens
    assert usage.prompt_tokens == full.usage.prompt_tokens


def test_client_error_types(client, model):
    import openai
    with pytest.raises(openai.NotFoundError) as e:
        client.completions.create(model="no-such-model", prompt="hi", max_tokens=2)
    assert "no-such-model" in str(e.value)
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=model, prompt="hi", max_tokens=-1)
    assert "max_tokens" in str(e.value)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=model, messages=[], max_completion_tokens=2)
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model=model, prompt=[1, 2, 5000], max_tokens=2)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=model, messages=MESSAGES, max_completion_tokens=2, logprobs=True,
                                       top_logprobs=50)
