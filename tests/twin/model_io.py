"""Loads a Llama-family model for the PyTorch twin from the same files medtune reads.

A model is returned as (cfg, weights): cfg a plain dict of the architecture fields, weights a
dict of fp32 torch tensors under Hugging Face names (model.layers.{i}.self_attn.q_proj.weight,
...), with Q/K rows in HF rotate_half order whatever the source. Written independently of the C
loaders (formats/, train/) so that the parity tests compare two implementations.
"""
import json
import os

import numpy as np
import torch

HF_PROJ = {
    "q_proj": "self_attn.q_proj", "k_proj": "self_attn.k_proj", "v_proj": "self_attn.v_proj",
    "o_proj": "self_attn.o_proj", "gate_proj": "mlp.gate_proj", "up_proj": "mlp.up_proj",
    "down_proj": "mlp.down_proj",
}
GGUF_PROJ = {
    "q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
    "gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down",
}


class ModelError(Exception):
    pass


def load_model(path):
    """Returns (cfg, weights) for a HF directory or a .gguf file."""
    if os.path.isdir(path):
        return load_hf(path)
    if path.endswith(".gguf"):
        return load_gguf(path)
    raise ModelError(f"{path}: not a model directory or .gguf file")


# ---------------------------------------------------------------- Hugging Face directory

def _rope_from_hf(conf, path):
    """Returns (theta, scaling dict or None) from rope_theta/rope_scaling or v5 rope_parameters."""
    params = conf.get("rope_parameters")
    if params is not None:
        theta = float(params.get("rope_theta", conf.get("rope_theta", 10000.0)))
        scaling = params
    else:
        theta = float(conf.get("rope_theta", 10000.0))
        scaling = conf.get("rope_scaling")
    if not scaling:
        return theta, None
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind == "default":
        return theta, None
    if kind == "linear":
        return theta, {"type": "linear", "factor": float(scaling["factor"])}
    if kind == "llama3":
        return theta, {
            "type": "llama3",
            "factor": float(scaling["factor"]),
            "low_freq_factor": float(scaling["low_freq_factor"]),
            "high_freq_factor": float(scaling["high_freq_factor"]),
            "original_max_position_embeddings": int(scaling["original_max_position_embeddings"]),
        }
    raise ModelError(f"{path}: rope_scaling type '{kind}' is not supported")


def config_from_hf(conf, path="config.json"):
    arch = conf.get("model_type", "llama")
    if arch not in ("llama", "mistral", "qwen2"):
        raise ModelError(f"{path}: model_type '{arch}' is not supported")
    if conf.get("hidden_act", "silu") != "silu":
        raise ModelError(f"{path}: hidden_act '{conf['hidden_act']}' is not supported")
    if conf.get("mlp_bias"):
        raise ModelError(f"{path}: mlp_bias is not supported")
    n_heads = int(conf["num_attention_heads"])
    hidden = int(conf["hidden_size"])
    head_dim = conf.get("head_dim") or hidden // n_heads
    theta, scaling = _rope_from_hf(conf, path)
    return {
        "arch": arch,
        "hidden_size": hidden,
        "intermediate_size": int(conf["intermediate_size"]),
        "n_layers": int(conf["num_hidden_layers"]),
        "n_heads": n_heads,
        "n_kv_heads": int(conf.get("num_key_value_heads") or n_heads),
        "head_dim": int(head_dim),
        "vocab_size": int(conf["vocab_size"]),
        "rms_norm_eps": float(conf.get("rms_norm_eps", 1e-6)),
        "rope_theta": theta,
        "rope_scaling": scaling,
        "tie": bool(conf.get("tie_word_embeddings", arch != "qwen2")),
        "attention_bias": arch == "qwen2" or bool(conf.get("attention_bias", False)),
        "bos_token_id": conf.get("bos_token_id"),
        # The twin attends over the whole sequence; run_case refuses longer ones than this.
        "sliding_window": (conf.get("sliding_window")
                           if arch == "mistral" or conf.get("use_sliding_window") else None),
    }


def _read_safetensors(files):
    from safetensors import safe_open
    out = {}
    meta = {}
    for f in files:
        with safe_open(f, framework="pt") as st:
            meta.update(st.metadata() or {})
            for k in st.keys():
                out[k] = st.get_tensor(k).to(torch.float32)
    return out, meta


def load_hf(path):
    cfg_path = os.path.join(path, "config.json")
    with open(cfg_path) as fp:
        cfg = config_from_hf(json.load(fp), cfg_path)
    index = os.path.join(path, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as fp:
            shards = sorted(set(json.load(fp)["weight_map"].values()))
        files = [os.path.join(path, s) for s in shards]
    else:
        files = [os.path.join(path, "model.safetensors")]
    w, _ = _read_safetensors(files)
    # Tied models may store either side of the tie (tinystories-656k stores only lm_head).
    if "model.embed_tokens.weight" not in w:
        if cfg["tie"] and "lm_head.weight" in w:
            w["model.embed_tokens.weight"] = w["lm_head.weight"]
        else:
            raise ModelError(f"{path}: model.embed_tokens.weight is missing")
    if cfg["tie"]:
        w["lm_head.weight"] = w["model.embed_tokens.weight"]
    elif "lm_head.weight" not in w:
        raise ModelError(f"{path}: lm_head.weight is missing and tie_word_embeddings is false")
    _check_shapes(cfg, w, path)
    return cfg, w


# ---------------------------------------------------------------- GGUF

def _field(reader, key, default=None):
    f = reader.fields.get(key)
    if f is None:
        return default
    return f.contents()


def unpermute_qk(w, n_head):
    """Undoes llama.cpp's convert_hf_to_gguf Q/K permutation for one [n_head*D, in] matrix."""
    out_dim = w.shape[0]
    rest = w.shape[1:]
    return (w.reshape(n_head, out_dim // n_head // 2, 2, *rest)
             .swapaxes(1, 2).reshape(out_dim, *rest))


def permute_qk(w, n_head):
    """The permutation llama.cpp's converter applies (rotate_half pairs -> interleaved pairs)."""
    out_dim = w.shape[0]
    rest = w.shape[1:]
    return (w.reshape(n_head, 2, out_dim // n_head // 2, *rest)
             .swapaxes(1, 2).reshape(out_dim, *rest))


def load_gguf(path):
    from gguf import GGUFReader
    from gguf.quants import dequantize
    r = GGUFReader(path)
    arch = _field(r, "general.architecture")
    if arch not in ("llama", "qwen2"):
        raise ModelError(f"{path}: general.architecture '{arch}' is not supported")

    def meta(key, default=None):
        return _field(r, f"{arch}.{key}", default)

    n_heads = int(meta("attention.head_count"))
    hidden = int(meta("embedding_length"))
    tokens = _field(r, "tokenizer.ggml.tokens")
    vocab = meta("vocab_size") or (len(tokens) if tokens is not None else None)
    head_dim = meta("attention.key_length") or meta("rope.dimension_count") or hidden // n_heads
    scaling = None
    kind = meta("rope.scaling.type")
    if kind == "linear":
        scaling = {"type": "linear", "factor": float(meta("rope.scaling.factor"))}
    elif kind not in (None, "none"):
        raise ModelError(f"{path}: {arch}.rope.scaling.type '{kind}' is not supported")

    tensors = {}
    for t in r.tensors:
        a = dequantize(t.data, t.tensor_type)
        shape = [int(x) for x in reversed(t.shape.tolist())]
        tensors[t.name] = torch.from_numpy(np.array(a, dtype=np.float32).reshape(shape))

    cfg = {
        "arch": arch,
        "hidden_size": hidden,
        "intermediate_size": int(meta("feed_forward_length")),
        "n_layers": int(meta("block_count")),
        "n_heads": n_heads,
        "n_kv_heads": int(meta("attention.head_count_kv", n_heads)),
        "head_dim": int(head_dim),
        "vocab_size": int(vocab),
        "rms_norm_eps": float(meta("attention.layer_norm_rms_epsilon", 1e-5)),
        "rope_theta": float(meta("rope.freq_base", 10000.0)),
        "rope_scaling": scaling,
        "tie": "output.weight" not in tensors,
        "attention_bias": arch == "qwen2",
        "bos_token_id": _field(r, "tokenizer.ggml.bos_token_id"),
    }
    # llama3 rope scaling reaches GGUF as precomputed per-frequency divisors.
    if "rope_freqs.weight" in tensors:
        cfg["rope_scaling"] = {"type": "freq_factors",
                               "factors": tensors.pop("rope_freqs.weight").tolist()}

    w = {"model.embed_tokens.weight": tensors.pop("token_embd.weight"),
         "model.norm.weight": tensors.pop("output_norm.weight")}
    w["lm_head.weight"] = tensors.pop("output.weight", w["model.embed_tokens.weight"])
    for i in range(cfg["n_layers"]):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = tensors.pop(f"blk.{i}.attn_norm.weight")
        w[p + "post_attention_layernorm.weight"] = tensors.pop(f"blk.{i}.ffn_norm.weight")
        for proj, g in GGUF_PROJ.items():
            w[p + HF_PROJ[proj] + ".weight"] = tensors.pop(f"blk.{i}.{g}.weight")
            b = tensors.pop(f"blk.{i}.{g}.bias", None)
            if b is not None:
                w[p + HF_PROJ[proj] + ".bias"] = b
        if arch == "llama":
            for proj, heads in (("q_proj", cfg["n_heads"]), ("k_proj", cfg["n_kv_heads"])):
                name = p + HF_PROJ[proj] + ".weight"
                w[name] = unpermute_qk(w[name], heads)
    _check_shapes(cfg, w, path)
    return cfg, w


def gguf_tokenizer(path):
    """A `tokenizers` byte-level BPE built from tokenizer.ggml.* (gpt2 model) of a GGUF file.

    Returns (tokenizer, add_bos, bos_id)."""
    from gguf import GGUFReader
    from tokenizers import Tokenizer, Regex, AddedToken, decoders, models, pre_tokenizers
    r = GGUFReader(path)
    kind = _field(r, "tokenizer.ggml.model")
    if kind != "gpt2":
        raise ModelError(f"{path}: tokenizer.ggml.model '{kind}' is not supported by the twin")
    tokens = _field(r, "tokenizer.ggml.tokens")
    merges = [tuple(m.split(" ", 1)) for m in _field(r, "tokenizer.ggml.merges")]
    types = _field(r, "tokenizer.ggml.token_type")
    pre = _field(r, "tokenizer.ggml.pre", "default")
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
    # Split patterns as llama.cpp's llama-vocab.cpp uses for each pre-tokenizer type;
    # ByteLevel(use_regex=True) is the GPT-2 pattern, which smollm & co. precede by single digits.
    if pre in ("smollm", "starcoder", "refact", "codeshell"):
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    elif pre in ("gpt2", "default"):
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    elif pre in ("qwen2", "llama-bpe"):
        pat = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
               r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
        if pre == "llama-bpe":
            pat = pat.replace(r"|\p{N}|", r"|\p{N}{1,3}|")
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(pat), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    else:
        raise ModelError(f"{path}: tokenizer.ggml.pre '{pre}' is not supported by the twin")
    tok.decoder = decoders.ByteLevel()
    # Control (3) and user-defined (4) tokens are matched whole, never split by BPE.
    specials = [AddedToken(t, special=True, normalized=False)
                for t, ty in zip(tokens, types) if ty in (3, 4)]
    tok.add_special_tokens(specials)
    add_bos = bool(_field(r, "tokenizer.ggml.add_bos_token", False))
    return tok, add_bos, _field(r, "tokenizer.ggml.bos_token_id")


def hf_tokenizer(path, cfg):
    """Returns (tokenizer, add_bos, bos_id) for a HF directory's tokenizer.json."""
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(os.path.join(path, "tokenizer.json"))
    add_bos = False
    tc = os.path.join(path, "tokenizer_config.json")
    if os.path.exists(tc):
        with open(tc) as fp:
            add_bos = bool(json.load(fp).get("add_bos_token", False))
    return tok, add_bos, cfg.get("bos_token_id")


def load_tokenizer(path, cfg):
    if os.path.isdir(path):
        return hf_tokenizer(path, cfg)
    return gguf_tokenizer(path)


def _check_shapes(cfg, w, path):
    C, F = cfg["hidden_size"], cfg["intermediate_size"]
    H, KV, D, V = cfg["n_heads"], cfg["n_kv_heads"], cfg["head_dim"], cfg["vocab_size"]
    want = {"model.embed_tokens.weight": (V, C), "lm_head.weight": (V, C), "model.norm.weight": (C,)}
    shapes = {"q_proj": (H * D, C), "k_proj": (KV * D, C), "v_proj": (KV * D, C),
              "o_proj": (C, H * D), "gate_proj": (F, C), "up_proj": (F, C), "down_proj": (C, F)}
    for i in range(cfg["n_layers"]):
        p = f"model.layers.{i}."
        want[p + "input_layernorm.weight"] = (C,)
        want[p + "post_attention_layernorm.weight"] = (C,)
        for proj, s in shapes.items():
            want[p + HF_PROJ[proj] + ".weight"] = s
        if cfg["arch"] == "qwen2":
            for proj in ("q_proj", "k_proj", "v_proj"):
                want[p + HF_PROJ[proj] + ".bias"] = (shapes[proj][0],)
    for k, s in want.items():
        if k not in w:
            raise ModelError(f"{path}: tensor {k} is missing")
        if tuple(w[k].shape) != s:
            raise ModelError(f"{path}: tensor {k} has shape {tuple(w[k].shape)}, expected {s}")
