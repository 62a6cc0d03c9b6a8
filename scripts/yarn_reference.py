#!/usr/bin/env python3
"""Prints YaRN / default RoPE inverse frequencies as Hugging Face transformers computes
them, as Swift constants for Tests/EbbTensorTests/RotaryTests.swift.

Run in a throwaway virtualenv:
    python3 -m venv /tmp/yarnvenv && /tmp/yarnvenv/bin/pip install numpy torch transformers
    /tmp/yarnvenv/bin/python scripts/yarn_reference.py
"""
import torch
import transformers
from transformers import DeepseekV3Config, GptOssConfig
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS


def emit(name, inv_freq, attention_factor):
    values = [float(v) for v in inv_freq.to(torch.float32).tolist()]
    print(f"    // {name}")
    print(f"    static let {name}AttentionFactor: Double = {float(attention_factor)!r}")
    print(f"    static let {name}: [Float] = [")
    for i in range(0, len(values), 4):
        print("        " + ", ".join(f"{v:.9e}" for v in values[i:i + 4]) + ",")
    print("    ]")


print(f"    // transformers {transformers.__version__}, torch {torch.__version__}")

# DeepSeek-V3's published config.json (rope part): qk_rope_head_dim 64, rope_theta 10000,
# max_position_embeddings 163840, rope_scaling yarn factor 40, original 4096,
# beta_fast 32, beta_slow 1, mscale 1, mscale_all_dim 1.
ds = DeepseekV3Config(
    qk_rope_head_dim=64,
    max_position_embeddings=163840,
    rope_theta=10000,
    rope_scaling={"type": "yarn", "factor": 40, "original_max_position_embeddings": 4096,
                  "beta_fast": 32, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0},
)
assert ds.head_dim == 64, ds.head_dim
inv, att = ROPE_INIT_FUNCTIONS["yarn"](ds, "cpu")
emit("deepseekV3", inv, att)

# gpt-oss's published config.json: head_dim 64, rope_theta 150000, max_position_embeddings
# 131072, rope_scaling yarn factor 32, original 4096, beta_fast 32, beta_slow 1,
# truncate false.
go = GptOssConfig(
    head_dim=64,
    max_position_embeddings=131072,
    rope_theta=150000,
    rope_scaling={"rope_type": "yarn", "factor": 32.0, "original_max_position_embeddings": 4096,
                  "beta_fast": 32.0, "beta_slow": 1.0, "truncate": False},
)
assert go.head_dim == 64, go.head_dim
inv, att = ROPE_INIT_FUNCTIONS["yarn"](go, "cpu")
emit("gptOss", inv, att)

# Synthetic: mscale ≠ mscale_all_dim (attention factor ratio path), theta 10000, dim 64.
syn = DeepseekV3Config(
    qk_rope_head_dim=64,
    max_position_embeddings=163840,
    rope_theta=10000,
    rope_scaling={"type": "yarn", "factor": 40, "original_max_position_embeddings": 4096,
                  "beta_fast": 32, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 0.5},
)
inv, att = ROPE_INIT_FUNCTIONS["yarn"](syn, "cpu")
emit("mscaleRatio", inv, att)
