#!/usr/bin/env python3
"""Writes a seeded random Llama/Qwen2 model directory (config.json + model.safetensors).

usage: make_model.py SPEC.json OUT_DIR

SPEC keys: arch (llama|qwen2), hidden_size, intermediate_size, n_layers, n_heads, n_kv_heads,
head_dim, vocab_size, tie, rope_theta, rope_scaling (null or the HF dict), dtype (F32|BF16|F16),
seed, max_position_embeddings, and optionally rms_norm_eps, rope_style ("rope_scaling" or
"rope_parameters": where the rope fields go in config.json, the latter as transformers v5),
sharded (true: two shards + model.safetensors.index.json).
Weight scales keep activations and logits O(1): projections N(0, 1/in), norms 1 + 0.1 N(0,1),
biases 0.1 N(0,1), embeddings N(0, 1) (N(0, 1/hidden) when tied, as they are the lm_head too).
"""
import json
import os
import sys

import torch

DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}
SPEC_KEYS = {"arch", "hidden_size", "intermediate_size", "n_layers", "n_heads", "n_kv_heads",
             "head_dim", "vocab_size", "tie", "rope_theta", "rope_scaling", "dtype", "seed",
             "max_position_embeddings", "rms_norm_eps", "rope_style", "sharded", "description"}


def make_weights(spec):
    g = torch.Generator().manual_seed(spec["seed"])
    C, F, V = spec["hidden_size"], spec["intermediate_size"], spec["vocab_size"]
    H, KV, D = spec["n_heads"], spec["n_kv_heads"], spec["head_dim"]

    def normal(*shape, std):
        return torch.randn(*shape, generator=g, dtype=torch.float64) * std

    def proj(out, inp):
        return normal(out, inp, std=inp ** -0.5)

    w = {"model.embed_tokens.weight": normal(V, C, std=C ** -0.5 if spec["tie"] else 1.0)}
    for i in range(spec["n_layers"]):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = 1 + normal(C, std=0.1)
        w[p + "self_attn.q_proj.weight"] = proj(H * D, C)
        w[p + "self_attn.k_proj.weight"] = proj(KV * D, C)
        w[p + "self_attn.v_proj.weight"] = proj(KV * D, C)
        if spec["arch"] == "qwen2":
            w[p + "self_attn.q_proj.bias"] = normal(H * D, std=0.1)
            w[p + "self_attn.k_proj.bias"] = normal(KV * D, std=0.1)
            w[p + "self_attn.v_proj.bias"] = normal(KV * D, std=0.1)
        w[p + "self_attn.o_proj.weight"] = proj(C, H * D)
        w[p + "post_attention_layernorm.weight"] = 1 + normal(C, std=0.1)
        w[p + "mlp.gate_proj.weight"] = proj(F, C)
        w[p + "mlp.up_proj.weight"] = proj(F, C)
        w[p + "mlp.down_proj.weight"] = proj(C, F)
    w["model.norm.weight"] = 1 + normal(C, std=0.1)
    if not spec["tie"]:
        w["lm_head.weight"] = proj(V, C)
    dt = DTYPES[spec["dtype"]]
    return {k: v.to(dt).contiguous() for k, v in w.items()}


def make_config(spec):
    arch = spec["arch"]
    conf = {
        "architectures": ["Qwen2ForCausalLM" if arch == "qwen2" else "LlamaForCausalLM"],
        "model_type": arch,
        "hidden_size": spec["hidden_size"],
        "intermediate_size": spec["intermediate_size"],
        "num_hidden_layers": spec["n_layers"],
        "num_attention_heads": spec["n_heads"],
        "num_key_value_heads": spec["n_kv_heads"],
        "head_dim": spec["head_dim"],
        "vocab_size": spec["vocab_size"],
        "hidden_act": "silu",
        "max_position_embeddings": spec["max_position_embeddings"],
        "rms_norm_eps": spec.get("rms_norm_eps", 1e-6),
        "tie_word_embeddings": spec["tie"],
        "bos_token_id": 1,
        "eos_token_id": 2,
        "torch_dtype": {"F32": "float32", "BF16": "bfloat16", "F16": "float16"}[spec["dtype"]],
    }
    if arch == "llama":
        conf["attention_bias"] = False
        conf["mlp_bias"] = False
    else:
        conf["use_sliding_window"] = False
    if spec.get("rope_style", "rope_scaling") == "rope_parameters":
        params = {"rope_type": "default", "rope_theta": spec["rope_theta"]}
        params.update(spec["rope_scaling"] or {})
        conf["rope_parameters"] = params
    else:
        conf["rope_theta"] = spec["rope_theta"]
        conf["rope_scaling"] = spec["rope_scaling"]
    return conf


def write_model(spec, out_dir):
    from safetensors.torch import save_file
    extra = set(spec) - SPEC_KEYS
    if extra:
        raise ValueError(f"unknown spec key '{sorted(extra)[0]}'")
    os.makedirs(out_dir, exist_ok=True)
    w = make_weights(spec)
    meta = {"format": "pt"}
    if spec.get("sharded"):
        names = sorted(w)
        half = len(names) // 2
        shards = {"model-00001-of-00002.safetensors": names[:half],
                  "model-00002-of-00002.safetensors": names[half:]}
        weight_map = {}
        for fname, keys in shards.items():
            save_file({k: w[k] for k in keys}, os.path.join(out_dir, fname), metadata=meta)
            weight_map.update({k: fname for k in keys})
        with open(os.path.join(out_dir, "model.safetensors.index.json"), "w") as fp:
            json.dump({"metadata": {}, "weight_map": weight_map}, fp, indent=2, sort_keys=True)
    else:
        save_file(w, os.path.join(out_dir, "model.safetensors"), metadata=meta)
    with open(os.path.join(out_dir, "config.json"), "w") as fp:
        json.dump(make_config(spec), fp, indent=2, sort_keys=True)


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1]) as fp:
        spec = json.load(fp)
    write_model(spec, argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
