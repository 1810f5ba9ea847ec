"""Independent references for model loading, written with the `safetensors`, `gguf` and torch
packages. Each case builds (when needed) a model in OUT/model and writes OUT/ref.json +
OUT/ref.f32: the config model_load must produce and every fp32 weight, named after the fields
of model/model.h ("embed", "layers.0.wq", ...). tests/test_model_load.c compares them."""
import json
import os
import shutil

import numpy as np
import torch
import gguf
from gguf.quants import quantize, dequantize
from safetensors import safe_open
from safetensors.torch import save_file

Q = gguf.GGMLQuantizationType

HF_LAYER = {  # model.h field -> HF name inside model.layers.N
    "attn_norm": "input_layernorm.weight", "wq": "self_attn.q_proj.weight",
    "wk": "self_attn.k_proj.weight", "wv": "self_attn.v_proj.weight",
    "bq": "self_attn.q_proj.bias", "bk": "self_attn.k_proj.bias", "bv": "self_attn.v_proj.bias",
    "wo": "self_attn.o_proj.weight", "mlp_norm": "post_attention_layernorm.weight",
    "w_gate": "mlp.gate_proj.weight", "w_up": "mlp.up_proj.weight",
    "w_down": "mlp.down_proj.weight",
}
GGUF_LAYER = {
    "attn_norm": "attn_norm.weight", "wq": "attn_q.weight", "wk": "attn_k.weight",
    "wv": "attn_v.weight", "bq": "attn_q.bias", "bk": "attn_k.bias", "bv": "attn_v.bias",
    "wo": "attn_output.weight", "mlp_norm": "ffn_norm.weight", "w_gate": "ffn_gate.weight",
    "w_up": "ffn_up.weight", "w_down": "ffn_down.weight",
}


def llama_cpp_permute(w, n_head):
    """llama.cpp's HF -> GGUF Q/K row permutation (convert_hf_to_gguf.py LlamaModel.permute)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def llama_cpp_unpermute(w, n_head):
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_ref(out, config, tensors):
    """tensors: list of (model.h name, np.ndarray)."""
    index, offset = [], 0
    with open(os.path.join(out, "ref.f32"), "wb") as f:
        for name, arr in tensors:
            a = np.ascontiguousarray(arr, dtype="<f4")
            f.write(a.tobytes())
            index.append({"name": name, "shape": list(a.shape), "offset": offset})
            offset += a.size
    with open(os.path.join(out, "ref.json"), "w") as f:
        json.dump({"config": config, "tensors": index}, f, indent=1)


# ---- Hugging Face directories ----

def hf_expected_config(cfg):
    """The config fields as transformers defines them for llama / mistral / qwen2."""
    arch = cfg.get("model_type")
    heads = cfg["num_attention_heads"]
    rope = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
    rtype = rope.get("rope_type", rope.get("type", "default"))
    theta = rope.get("rope_theta", cfg.get("rope_theta", 10000.0))
    eos = cfg.get("eos_token_id")
    eos = [] if eos is None else eos if isinstance(eos, list) else [eos]
    e = {
        "arch": arch, "hidden_size": cfg["hidden_size"],
        "intermediate_size": cfg["intermediate_size"], "n_layers": cfg["num_hidden_layers"],
        "n_heads": heads, "n_kv_heads": cfg.get("num_key_value_heads") or heads,
        "head_dim": cfg.get("head_dim") or cfg["hidden_size"] // heads,
        "vocab_size": cfg["vocab_size"],
        "max_position_embeddings": cfg.get("max_position_embeddings", 2048),
        "rms_norm_eps": cfg.get("rms_norm_eps", 1e-6), "rope_theta": theta,
        "rope_scaling": {"default": "none"}.get(rtype, rtype),
        "tie_word_embeddings": bool(cfg.get("tie_word_embeddings", False)),
        "attention_bias": arch == "qwen2" or (arch == "llama" and bool(cfg.get("attention_bias", False))),
        "bos_token_id": -1 if cfg.get("bos_token_id") is None else cfg["bos_token_id"],
        "eos_token_ids": eos,
    }
    if rtype in ("linear", "llama3"):
        e["rope_factor"] = rope["factor"]
    if rtype == "llama3":
        e["rope_low_freq_factor"] = rope["low_freq_factor"]
        e["rope_high_freq_factor"] = rope["high_freq_factor"]
        e["rope_original_max_position"] = rope["original_max_position_embeddings"]
    return e


def hf_state_dict(model_dir):
    """All tensors of a HF directory as fp32 numpy arrays, plus the dtype names seen."""
    index = os.path.join(model_dir, "model.safetensors.index.json")
    files = (sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index)
             else ["model.safetensors"])
    sd, dtypes, aliases = {}, {}, {}
    for fn in files:
        with safe_open(os.path.join(model_dir, fn), framework="pt") as f:
            aliases.update({k: v for k, v in (f.metadata() or {}).items() if k != "format"})
            for k in f.keys():
                t = f.get_tensor(k)
                sd[k] = t.float().numpy()
                dtypes[k] = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}[t.dtype]
    for k, v in aliases.items():  # torch save_model drops shared tensors, naming the kept one
        if k not in sd and v in sd:
            sd[k], dtypes[k] = sd[v], dtypes[v]
    return sd, dtypes


def dtype_string(names):
    counts = {}
    for n in names:
        counts[n] = counts.get(n, 0) + 1
    # Most used first; ties keep first-seen order (the loader's order is the slot order).
    return "+".join(sorted(counts, key=lambda n: -counts[n]))


def hf_reference(model_dir, out, overrides=None):
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    e = hf_expected_config(cfg)
    sd, dtypes = hf_state_dict(model_dir)
    tied = e["tie_word_embeddings"]
    if "model.embed_tokens.weight" not in sd and tied:
        sd["model.embed_tokens.weight"] = sd["lm_head.weight"]
        dtypes["model.embed_tokens.weight"] = dtypes["lm_head.weight"]
    order = [("embed", "model.embed_tokens.weight"), ("final_norm", "model.norm.weight")]
    if not tied:
        order.append(("lm_head", "lm_head.weight"))
    for l in range(e["n_layers"]):
        for field, name in HF_LAYER.items():
            if field.startswith("b") and not e["attention_bias"]:
                continue
            order.append((f"layers.{l}.{field}", f"model.layers.{l}.{name}"))
    tensors = [(field, sd[name]) for field, name in order]
    e["n_params"] = int(sum(a.size for _, a in tensors))
    e["source_format"] = "safetensors"
    e["source_dtypes"] = dtype_string(dtypes[name] for _, name in order)
    e.update(overrides or {})
    write_ref(out, e, tensors)


def copy_hf_dir(src, dst, config_update=None, dtype=None, shards=0, untie=False, add_bias=False):
    """A variant of a HF model directory written with safetensors.torch."""
    os.makedirs(dst, exist_ok=True)
    cfg = json.load(open(os.path.join(src, "config.json")))
    cfg.update(config_update or {})
    sd = {k: torch.from_numpy(v.copy()) for k, v in hf_state_dict(src)[0].items()}
    if "model.embed_tokens.weight" not in sd:
        sd["model.embed_tokens.weight"] = sd["lm_head.weight"].clone()
    g = torch.Generator().manual_seed(1234)
    if untie:
        cfg["tie_word_embeddings"] = False
        sd["lm_head.weight"] = sd["model.embed_tokens.weight"] + 0.01 * torch.randn(
            sd["model.embed_tokens.weight"].shape, generator=g)
    elif cfg.get("tie_word_embeddings"):
        sd.pop("lm_head.weight", None)
    if add_bias:
        for k in list(sd):
            if k.endswith(("q_proj.weight", "k_proj.weight", "v_proj.weight")):
                sd[k[:-len("weight")] + "bias"] = torch.randn(sd[k].shape[0], generator=g)
    if dtype is not None:
        sd = {k: v.to(dtype) for k, v in sd.items()}
    sd = {k: v.contiguous() for k, v in sd.items()}
    json.dump(cfg, open(os.path.join(dst, "config.json"), "w"), indent=1)
    tok = os.path.join(src, "tokenizer.json")
    if os.path.exists(tok):
        shutil.copy(tok, dst)
    if shards:
        names = sorted(sd)
        per = (len(names) + shards - 1) // shards
        weight_map = {}
        for i in range(shards):
            fn = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
            part = {k: sd[k] for k in names[i * per:(i + 1) * per]}
            save_file(part, os.path.join(dst, fn), metadata={"format": "pt"})
            weight_map.update({k: fn for k in part})
        json.dump({"metadata": {}, "weight_map": weight_map},
                  open(os.path.join(dst, "model.safetensors.index.json"), "w"), indent=1)
    else:
        save_file(sd, os.path.join(dst, "model.safetensors"), metadata={"format": "pt"})


# ---- GGUF ----

def gguf_expected_config(path):
    r = gguf.GGUFReader(path)
    f = lambda k, d=None: r.fields[k].contents() if k in r.fields else d
    arch = f("general.architecture")
    names = {t.name: t for t in r.tensors}
    heads = f(f"{arch}.attention.head_count")
    hidden = f(f"{arch}.embedding_length")
    e = {
        "arch": arch, "hidden_size": hidden, "intermediate_size": f(f"{arch}.feed_forward_length"),
        "n_layers": f(f"{arch}.block_count"), "n_heads": heads,
        "n_kv_heads": f(f"{arch}.attention.head_count_kv", heads),
        "head_dim": f(f"{arch}.attention.key_length", hidden // heads),
        "vocab_size": int(names["token_embd.weight"].shape[1]),
        "max_position_embeddings": f(f"{arch}.context_length", 2048),
        "rms_norm_eps": f(f"{arch}.attention.layer_norm_rms_epsilon"),
        "rope_theta": f(f"{arch}.rope.freq_base", 10000.0),
        "rope_scaling": f(f"{arch}.rope.scaling.type", "none"),
        "tie_word_embeddings": "output.weight" not in names,
        "attention_bias": arch == "qwen2" or "blk.0.attn_q.bias" in names,
        "bos_token_id": f("tokenizer.ggml.bos_token_id", -1),
        "eos_token_ids": [f("tokenizer.ggml.eos_token_id")] if "tokenizer.ggml.eos_token_id" in r.fields else [],
        "source_format": "gguf",
    }
    if e["rope_scaling"] == "linear":
        e["rope_factor"] = f(f"{arch}.rope.scaling.factor")
    if "tokenizer.ggml.model" in r.fields:
        e["tokenizer_kind"] = f("tokenizer.ggml.model") + " (gguf)"
    return r, e


def gguf_reference(path, out):
    """Every weight dequantized by gguf.quants, with llama.cpp's Q/K permutation undone."""
    r, e = gguf_expected_config(path)
    names = {t.name: t for t in r.tensors}
    order = [("embed", "token_embd.weight"), ("final_norm", "output_norm.weight")]
    if not e["tie_word_embeddings"]:
        order.append(("lm_head", "output.weight"))
    for l in range(e["n_layers"]):
        for field, name in GGUF_LAYER.items():
            if field.startswith("b") and not e["attention_bias"]:
                continue
            order.append((f"layers.{l}.{field}", f"blk.{l}.{name}"))
    tensors = []
    for field, name in order:
        t = names[name]
        a = dequantize(t.data, t.tensor_type).reshape([int(x) for x in reversed(t.shape)])
        if e["arch"] == "llama" and field.split(".")[-1] in ("wq", "bq", "wk", "bk"):
            a = llama_cpp_unpermute(a, e["n_heads"] if "q" in field.split(".")[-1] else e["n_kv_heads"])
        tensors.append((field, a.astype(np.float32)))
    e["n_params"] = int(sum(a.size for _, a in tensors))
    e["source_dtypes"] = dtype_string(names[name].tensor_type.name for _, name in order)
    write_ref(out, e, tensors)


def gguf_add_hf_shape(w, cfg):
    """The llama-family sizes of HF config cfg as GGUF metadata (no RoPE keys, no vocabulary)."""
    heads = cfg["num_attention_heads"]
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(heads)
    w.add_head_count_kv(cfg.get("num_key_value_heads") or heads)
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])


def gguf_put(w, name, a, qtype):
    """a as tensor `name` of GGUF writer w: F32 for vectors, for qtype F32 and for rows that do
    not fill qtype's blocks; float16 for F16; else quantized by gguf-py."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    if a.ndim == 1 or qtype == Q.F32 or a.shape[-1] % gguf.GGML_QUANT_SIZES[qtype][0] != 0:
        w.add_tensor(name, a)
    elif qtype == Q.F16:
        w.add_tensor(name, a.astype(np.float16))
    else:
        w.add_tensor(name, quantize(a, qtype), raw_dtype=qtype)


def gguf_close(w):
    """Writes GGUF writer w's header, metadata and tensors, and closes the file."""
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_gguf_from_hf(model_dir, path, qtype, arch="llama", add_bias=False):
    """A GGUF as llama.cpp's converter lays it out, from a HF directory: Q/K permuted for
    llama, 1-D tensors in F32, matrices in `qtype` (F32 where a row does not fill blocks)."""
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    sd, _ = hf_state_dict(model_dir)
    if "model.embed_tokens.weight" not in sd:
        sd["model.embed_tokens.weight"] = sd["lm_head.weight"]
    heads, kv = cfg["num_attention_heads"], cfg.get("num_key_value_heads") or cfg["num_attention_heads"]
    g = np.random.default_rng(7)
    w = gguf.GGUFWriter(path, arch)
    gguf_add_hf_shape(w, cfg)
    w.add_rope_freq_base(cfg.get("rope_theta", 10000.0))
    w.add_key_length(cfg.get("head_dim") or cfg["hidden_size"] // heads)
    w.add_value_length(cfg.get("head_dim") or cfg["hidden_size"] // heads)
    w.add_tokenizer_model("llama")
    w.add_bos_token_id(cfg["bos_token_id"])
    w.add_eos_token_id(cfg["eos_token_id"])

    def put(name, a):
        gguf_put(w, name, a, qtype)

    put("token_embd.weight", sd["model.embed_tokens.weight"])
    put("output_norm.weight", sd["model.norm.weight"])
    if not cfg.get("tie_word_embeddings"):
        put("output.weight", sd["lm_head.weight"])
    for l in range(cfg["num_hidden_layers"]):
        for field, name in HF_LAYER.items():
            hf = sd.get(f"model.layers.{l}.{name}")
            if field.startswith("b"):
                if not add_bias:
                    continue
                hf = g.standard_normal(sd[f"model.layers.{l}.{HF_LAYER['w' + field[1]]}"].shape[0]).astype(np.float32)
            if arch == "llama" and field in ("wq", "bq"):
                hf = llama_cpp_permute(hf, heads)
            if arch == "llama" and field in ("wk", "bk"):
                hf = llama_cpp_permute(hf, kv)
            put(f"blk.{l}.{GGUF_LAYER[field]}", hf)
    gguf_close(w)
