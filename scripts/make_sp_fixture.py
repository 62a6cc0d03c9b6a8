#!/usr/bin/env python3
"""Builds the SentencePiece-style (Mixtral/Mistral/Llama-2) BPE tokenizer fixture and its
Hugging Face reference outputs for Tests/EbbTokenizerTests/SPReferenceData.swift.

Needs `pip install tokenizers` (the data in the repository was made with 0.23.3):

    python3 scripts/make_sp_fixture.py > Tests/EbbTokenizerTests/SPReferenceData.swift

The tokenizer is trained here on a small built-in corpus with a Metaspace pre-tokenizer,
then given the configuration of Mixtral-8x7B-Instruct's tokenizer.json: the vocabulary
starts with <unk>, <s>, </s> and the 256 byte tokens <0x00>..<0xFF> (byte_fallback),
normalizer Sequence[Prepend("▁"), Replace(" " → "▁")], no pre-tokenizer, decoder
Sequence[Replace("▁" → " "), ByteFallback, Fuse, Strip(" ", 1, 0)] and a TemplateProcessing
post-processor adding <s>. The alphabet is limited, so rarer characters (most CJK, emoji)
take the byte fallback. Variants swap single stages (Metaspace pre-tokenizer and decoder with
each prepend scheme, legacy add_prefix_space, unk without byte fallback, Strip/Regex stages,
other templates).
"""
import json
import random
import sys

import tokenizers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from tokenizers.decoders import DecodeStream

CORPUS = """
The quick brown fox jumps over the lazy dog. A journey of a thousand miles begins with a single step.
Mixture-of-experts models route every token to a few experts; the router picks the top two of eight.
In the beginning the Universe was created. This has made a lot of people very angry and been widely
regarded as a bad move. It was the best of times, it was the worst of times, it was the age of wisdom.
Please answer the question below. Explain your reasoning step by step, then give the final answer.
User: What is the capital of France?
Assistant: The capital of France is Paris.
def add(a, b):
    return a + b

for i in range(10):
    print(i, i * i)
Numbers: 0 1 2 3 4 5 6 7 8 9 10 42 100 2024 3.14159 1,000,000
Tokenizers split text into pieces; byte fallback handles characters outside the vocabulary.
Les élèves étudient le français à l'école. Der Bär läuft über die Straße. ¿Dónde está la estación?
Привет, как дела? Всё хорошо, спасибо.
中文文本的例子。我们在这里测试中文。日本語のテキストです。
Emoji are rare here: 🙂 🚀
""".strip()

WORDS = ("the of and to in is that for it as with was on be by this are or from at an not have but "
         "which one all were when we there can more if out so said what up its about into than them only "
         "model token expert router layer attention cache batch stream decode encode prompt sequence").split()


def corpus():
    rng = random.Random(7)
    lines = CORPUS.split("\n")
    for _ in range(300):
        lines.append(" ".join(rng.choice(WORDS) for _ in range(rng.randrange(3, 15))))
    return lines


def build():
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=True)
    trainer = trainers.BpeTrainer(vocab_size=700, special_tokens=["<unk>", "<s>", "</s>"], limit_alphabet=90,
                                  show_progress=False)
    tok.train_from_iterator(corpus(), trainer)
    j = json.loads(tok.to_str())

    # Llama layout: <unk>, <s>, </s>, then the byte tokens, then the trained pieces.
    old = sorted(j["model"]["vocab"].items(), key=lambda kv: kv[1])
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab["<0x%02X>" % b] = len(vocab)
    for token, _ in old:
        if token not in vocab:
            vocab[token] = len(vocab)
    j["model"]["vocab"] = vocab
    j["model"]["dropout"] = None
    j["added_tokens"] = [
        {"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
         "special": True} for i, c in enumerate(["<unk>", "<s>", "</s>"])]
    j["normalizer"] = {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "\u2581"},
        {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]}
    j["pre_tokenizer"] = None
    j["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
        {"type": "ByteFallback"}, {"type": "Fuse"},
        {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    j["post_processor"] = template("<s> $A", [("<s>", 1)])
    return j


def template(single, specials):
    pair = single + " " + single.replace("$A", "$B:1")
    return {"type": "TemplateProcessing",
            "single": [piece(p) for p in single.split()],
            "pair": [piece(p) for p in pair.split()],
            "special_tokens": {t: {"id": t, "ids": [i], "tokens": [t]} for t, i in specials}}


def piece(p):
    if p.startswith("$"):
        name, _, type_id = p[1:].partition(":")
        return {"Sequence": {"id": name, "type_id": int(type_id or 0)}}
    return {"SpecialToken": {"id": p, "type_id": 0}}


def stream(t, ids, skip):
    ds = DecodeStream(skip_special_tokens=skip)
    return [ds.step(t, i) or "" for i in ids]


def main():
    base = build()
    t = Tokenizer.from_str(json.dumps(base))
    rng = random.Random(1234)

    alphabet = (list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") * 3 + list("0123456789") +
                list(" " * 14) + list("\n\t") * 2 + list(".,;:!?'\"-()[]{}<>/@#$%&*+=_") +
                ["\u2581", "\u00e9", "\u00e8", "\u00fc", "\u00df", "\u4e2d", "\u6587", "\u5b57", "\u9f8d", "\u3042",
                 "\uac00", "\u0416", "\u03a9", "\U0001F600", "\U0001F680", "\U0001F642", "\u00a0", "\u3000",
                 "\u200b", "\u0000", "\u007f", "\r", "<s>", "</s>", "<unk>"])

    texts = [
        "", " ", "  ", "   ", "\n", "\n\n", " \n ", "\t", "a", " a", "a ", "  a  ", "Hello", " Hello", "Hello world",
        "Hello  world", "Hello   world  ", "  leading spaces", "trailing spaces   ", "line one\nline two\n",
        "\n\nstarts with newlines", "tabs\tand\ttabs", "The quick brown fox jumps over the lazy dog.",
        "What is the capital of France?", "[INST] Hello [/INST]", "<s>[INST] Hi [/INST] Hello</s>",
        "<s>", "</s>", "<unk>", "<s><s>", "a<s>b", "a <s> b", " <s>", "<s> ", "</s>hello", "hello</s>world",
        "<unk>x", "x<unk>", "<s", "s>", "def add(a, b):\n    return a + b\n", "for i in range(10):\n\tprint(i)",
        "3.14159 and 1,000,000", "0123456789", "\u4e2d\u6587", "\u4e2d\u6587\u6587\u672c\u7684\u4f8b\u5b50",
        "\u9f8d\u732b\u9f8d", "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8", "\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8",
        "\U0001F600", "\U0001F680 rocket", "emoji \U0001F600\U0001F680\U0001F642 end", "\U0001F468\u200d\U0001F469\u200d\U0001F467",
        "\U0001F44D\U0001F3FD", "caf\u00e9", "cafe\u0301", "na\u00efve \u00fcber Stra\u00dfe", "\u00bfD\u00f3nde?",
        "\u041f\u0440\u0438\u0432\u0435\u0442", "\u2581", "\u2581\u2581", "a\u2581b", " \u2581 ", "\u2581Hello",
        "a\u00a0b", "a\u3000b", "zero\u200bwidth", "nul\u0000byte", "del\u007f", "cr\r\nlf", "<0x41>", "<0x0A>",
        "\ufffd", "\U0010FFFF", "\ue000", "x" * 40, "ab" * 25, "the the the the", "The The THE",
        "Mixture-of-experts models route every token", "expert router layer attention cache",
    ]
    for n in [1, 2, 3, 5, 8, 13, 21, 34]:
        for _ in range(5):
            texts.append("".join(rng.choice(alphabet) for _ in range(n)))
    texts = list(dict.fromkeys(texts))

    out = {"version": tokenizers.__version__, "tokenizer": base}
    enc = []
    for s in texts:
        e = t.encode(s)
        plain = t.encode(s, add_special_tokens=False).ids
        enc.append({"text": s, "ids": e.ids, "plain": plain,
                    "decoded": t.decode(e.ids, skip_special_tokens=False),
                    "skipped": t.decode(e.ids, skip_special_tokens=True),
                    "plain_decoded": t.decode(plain, skip_special_tokens=False),
                    "stream": stream(t, e.ids, False), "stream_skipped": stream(t, e.ids, True)})
    out["encodings"] = enc

    # Arbitrary ids, weighted towards byte tokens and specials (runs of bytes, invalid UTF-8).
    vocab_size = t.get_vocab_size()
    dec = []
    for k in range(80):
        ids = []
        for _ in range(rng.randrange(0, 14)):
            r = rng.random()
            if r < 0.15:
                ids.append(rng.randrange(0, 3))
            elif r < 0.45:
                ids.append(3 + rng.randrange(0, 256))
            elif r < 0.6:
                ids.append(3 + rng.choice([0x0A, 0x20, 0x41, 0xE4, 0xB8, 0xAD, 0xF0, 0x9F, 0x98, 0x80, 0xC3, 0xA9, 0xFF]))
            else:
                ids.append(rng.randrange(259, vocab_size))
        if k < 6:  # well-formed multi-byte characters as byte tokens
            ids = [3 + b for b in "\u4e2d\U0001F600\u00e9".encode()[: 3 + 2 * k]] + ids[:3]
        dec.append({"ids": ids, "text": t.decode(ids, skip_special_tokens=False),
                    "skipped": t.decode(ids, skip_special_tokens=True)})
    out["decodings"] = dec

    def metaspace(scheme, split, legacy=None):
        if legacy is not None:  # pre-0.19 files; add_prefix_space false needs prepend_scheme never
            return dict({"type": "Metaspace", "replacement": "\u2581", "add_prefix_space": legacy},
                        **({} if legacy else {"prepend_scheme": "never"}))
        return {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": scheme, "split": split}

    variants = {}
    for scheme in ["first", "always", "never"]:
        for split in [False, True]:
            variants[f"metaspace_{scheme}_{int(split)}"] = {
                "normalizer": None, "pre_tokenizer": metaspace(scheme, split),
                "decoder": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": scheme, "split": split}}
    for legacy in [True, False]:
        variants[f"metaspace_legacy_{int(legacy)}"] = {
            "normalizer": None, "pre_tokenizer": metaspace(None, None, legacy),
            "decoder": metaspace(None, None, legacy)}
    variants["metaspace_after_split"] = {
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": "\\d"}, "behavior": "Isolated", "invert": False},
            metaspace("first", True)]},
        "decoder": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": True}}
    # "model" entries are merged into the model object.
    variants["unk_fused_no_fallback"] = {"model": {"byte_fallback": False}}
    variants["unk_unfused_no_fallback"] = {"model": {"byte_fallback": False, "fuse_unk": False}}
    variants["unk_unfused_fallback"] = {"model": {"fuse_unk": False}}
    variants["normalizers_regex_strip"] = {
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Strip", "strip_left": True, "strip_right": True},
            {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "},
            {"type": "Prepend", "prepend": "\u2581"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]}}
    variants["normalizer_strip_left"] = {
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Strip", "strip_left": True, "strip_right": False},
            {"type": "Replace", "pattern": {"Regex": "a|e*"}, "content": "<>"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]}}
    variants["strip_then_metaspace_first"] = {
        "normalizer": {"type": "Strip", "strip_left": True, "strip_right": False},
        "pre_tokenizer": metaspace("first", False),
        "decoder": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False}}
    # (Hugging Face panics when a Strip decoder's stop reaches past a token's start, so stop
    # is only used per token, where no token is empty.)
    variants["decoder_strip_per_token"] = {
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Strip", "content": " ", "start": 0, "stop": 1}]}}
    variants["decoder_strip_fused"] = {
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "ByteFallback"},
            {"type": "Replace", "pattern": {"Regex": "\u2581+"}, "content": " "},
            {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 3, "stop": 0}]}}
    variants["decoder_metaspace_bytefallback"] = {
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "ByteFallback"}, {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always"},
            {"type": "Fuse"}]}}
    variants["no_decoder"] = {"decoder": None}
    variants["template_bos_eos"] = {"post_processor": template("<s> $A </s>", [("<s>", 1), ("</s>", 2)])}
    variants["template_eos_only"] = {"post_processor": template("$A </s>", [("</s>", 2)])}
    variants["no_post_processor"] = {"post_processor": None}

    vtexts = texts[:36] + texts[40:80:4]
    vdec = [d["ids"] for d in dec[:12]]
    vout = {}
    for name, over in variants.items():
        j = json.loads(json.dumps(base))
        for k, v in over.items():
            if k == "model":
                j["model"].update(v)
            else:
                j[k] = v
        tv = Tokenizer.from_str(json.dumps(j))
        cases = []
        for s in vtexts:
            ids = tv.encode(s).ids
            c = {"text": s, "ids": ids, "decoded": tv.decode(ids, skip_special_tokens=False),
                 "skipped": tv.decode(ids, skip_special_tokens=True)}
            if "post_processor" in over:
                c["plain"] = tv.encode(s, add_special_tokens=False).ids
            cases.append(c)
        decs = [{"ids": ids, "text": tv.decode(ids, skip_special_tokens=False),
                 "skipped": tv.decode(ids, skip_special_tokens=True)} for ids in vdec]
        vout[name] = {"overrides": over, "cases": cases, "decodings": decs}
        if "pre_tokenizer" in over:
            vout[name]["pieces"] = [{"text": s, "pieces": [p for p, _ in tv.pre_tokenizer.pre_tokenize_str(s)]}
                                    for s in vtexts]
    out["variants"] = vout

    js = json.dumps(out, ensure_ascii=True, indent=None, separators=(",", ":"))
    assert '"""#' not in js
    w = sys.stdout.write
    w("// Generated by scripts/make_sp_fixture.py with Hugging Face `tokenizers` " + tokenizers.__version__
      + "; do not edit by hand.\n")
    w("// A small SentencePiece-style (Mixtral/Llama-2 layout) byte-fallback BPE tokenizer.json under\n")
    w("// \"tokenizer\", with reference encodings, decodings and DecodeStream deltas, and stage variants.\n")
    w('let spReferenceJSON = #"""\n')
    w(js.replace('},{"text"', '},\n{"text"').replace('},{"ids"', '},\n{"ids"'))
    w('\n"""#\n')


if __name__ == "__main__":
    main()
