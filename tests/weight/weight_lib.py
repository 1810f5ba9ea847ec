"""Random-weight llama GGUF files in any stored type, for the weight exactness tests and the
quantized-base benchmarks (bench/quant_*.sh).

Types gguf-py can quantize (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, BF16, F16) are quantized from
random normal weights by gguf.quants.quantize; for the K-quants, which gguf-py only
dequantizes, every block is random bytes with its fp16 scales set to sane values, so that the
weights come out around 0.02 like a trained model's. Tensors are written one at a time
(gguf-py's tensor-info API), so a 7B-shaped file never sits in memory.

write_llama(path, spec, types) writes the file; its F32 twin (every tensor dequantized by
gguf.quants.dequantize) is write_llama(twin, spec, types, f32_twin=True) with the same seed.
"""
import numpy as np

import gguf
from gguf import GGMLQuantizationType as Q
from gguf import quants

QK_K = 256
# Scales of random K-quant blocks: (bytes offset of d, of dmin or None) and the fp16 values.
K_LAYOUT = {
    Q.Q2_K: (80, 82), Q.Q3_K: (108, None), Q.Q4_K: (0, 2), Q.Q5_K: (0, 2), Q.Q6_K: (208, None),
}
K_SCALE = {Q.Q2_K: (2e-3, 1e-3), Q.Q3_K: (3e-4, None), Q.Q4_K: (1e-4, 1e-4),
           Q.Q5_K: (5e-5, 5e-5), Q.Q6_K: (2e-5, None)}


def random_k_blocks(rng, qtype, rows, cols, gain=1.0):
    """[rows, row_bytes] uint8 of random qtype blocks with sane fp16 scales."""
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    nb = rows * (cols // block)
    raw = rng.integers(0, 256, size=(nb, size), dtype=np.uint8)
    d_off, m_off = K_LAYOUT[qtype]
    d_val, m_val = K_SCALE[qtype]
    d = (d_val * gain * (0.5 + rng.random(nb))).astype(np.float16)
    raw[:, d_off:d_off + 2] = d.view(np.uint8).reshape(nb, 2)
    if m_off is not None:
        m = (m_val * gain * (0.5 + rng.random(nb))).astype(np.float16)
        raw[:, m_off:m_off + 2] = m.view(np.uint8).reshape(nb, 2)
    return raw.reshape(rows, -1)


def stored(rng, qtype, rows, cols, gain=1.0):
    """(array to write, raw_dtype or None): a random [rows, cols] matrix in qtype."""
    if qtype in K_LAYOUT:
        return random_k_blocks(rng, qtype, rows, cols, gain), qtype
    w = (rng.standard_normal((rows, cols)) * 0.02 * gain).astype(np.float32)
    if qtype == Q.F32:
        return w, None
    if qtype == Q.F16:
        return w.astype(np.float16), None
    return quants.quantize(w, qtype), qtype


def f32_of(a, raw_dtype):
    if raw_dtype is None:
        return a.astype(np.float32)
    return quants.dequantize(a, raw_dtype).astype(np.float32)


SPEC = {"hidden_size": 256, "intermediate_size": 512, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2,
        "vocab_size": 320, "context": 256, "tied": True, "seed": 3}


def matrices(spec):
    """[(gguf name, rows, cols, role)] of every matrix, in file order."""
    C, F, V = spec["hidden_size"], spec["intermediate_size"], spec["vocab_size"]
    D = C // spec["n_heads"]
    q, kv = spec["n_heads"] * D, spec["n_kv_heads"] * D
    out = [("token_embd.weight", V, C, "embed")]
    if not spec["tied"]:
        out.append(("output.weight", V, C, "output"))
    for l in range(spec["n_layers"]):
        for name, rows, cols, role in (("attn_q", q, C, "q"), ("attn_k", kv, C, "k"),
                                       ("attn_v", kv, C, "v"), ("attn_output", C, q, "o"),
                                       ("ffn_gate", F, C, "gate"), ("ffn_up", F, C, "up"),
                                       ("ffn_down", C, F, "down")):
            out.append((f"blk.{l}.{name}.weight", rows, cols, role))
    return out


def add_spm_vocab(w, n):
    """A SentencePiece-style vocabulary of n tokens (<unk>, <s>, </s>, the 256 byte tokens,
    then "▁t<i>"), so that llama.cpp and `medtune generate` accept the file."""
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    tokens += [f"\u2581t{i}" for i in range(n - len(tokens))]
    types = [2, 3, 3] + [6] * 256 + [1] * (n - 259)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([-float(i) for i in range(n)])
    w.add_token_types(types)


def write_llama(path, spec, types, f32_twin=False):
    """A llama GGUF of spec's shape; types maps a role (embed, output, q, k, v, o, gate, up,
    down) or "*" to its GGMLQuantizationType. Norms are F32 around 1. With f32_twin, every
    tensor is written as F32 holding gguf-py's dequantization of the stored one."""
    rng = np.random.default_rng(spec["seed"])
    C = spec["hidden_size"]
    w = gguf.GGUFWriter(path, "llama")
    w.add_block_count(spec["n_layers"])
    w.add_context_length(spec["context"])
    w.add_embedding_length(C)
    w.add_feed_forward_length(spec["intermediate_size"])
    w.add_head_count(spec["n_heads"])
    w.add_head_count_kv(spec["n_kv_heads"])
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    if spec.get("vocab"):
        add_spm_vocab(w, spec["vocab_size"])
    plan = []  # (name, shape, kind, rows, cols, qtype)
    norms = ["output_norm.weight"] + [f"blk.{l}.{n}.weight" for l in range(spec["n_layers"])
                                      for n in ("attn_norm", "ffn_norm")]
    for name in norms:
        plan.append((name, None, C, 0, Q.F32))
    for name, rows, cols, role in matrices(spec):
        plan.append((name, role, rows, cols, types.get(role, types["*"])))
    for name, role, rows, cols, qt in plan:
        if role is None:
            w.add_tensor_info(name, (rows,), np.dtype(np.float32), rows * 4, raw_dtype=Q.F32)
            continue
        out_type = Q.F32 if f32_twin else qt
        block, size = gguf.GGML_QUANT_SIZES[out_type]
        nbytes = rows * cols // block * size
        if out_type in (Q.F32, Q.F16):
            dt = np.dtype(np.float32 if out_type == Q.F32 else np.float16)
            w.add_tensor_info(name, (rows, cols), dt, nbytes, raw_dtype=out_type)
        else:  # gguf-py takes the byte shape of quantized (and BF16) rows
            w.add_tensor_info(name, (rows, nbytes // rows), np.dtype(np.uint8), nbytes,
                              raw_dtype=out_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    for name, role, rows, cols, qt in plan:
        if role is None:
            w.write_tensor_data((1.0 + 0.1 * rng.standard_normal(rows)).astype(np.float32))
            continue
        # The embedding (the tied head too) gets larger weights so that logits are spread
        # and greedy choices are far from ties.
        a, raw = stored(rng, qt, rows, cols, gain=4.0 if role == "embed" else 1.0)
        w.write_tensor_data(f32_of(a, raw) if f32_twin else a)
    w.close()


def write_hf(out_dir, spec, round_trip=None):
    """A Hugging Face llama directory (config.json, model.safetensors in F32) of spec's shape
    with random weights. With round_trip (a GGMLQuantizationType), every matrix is replaced by
    gguf-py's dequantize(quantize(W)): the fp32 twin of that base converted at load."""
    import json
    import os
    from safetensors.numpy import save_file
    rng = np.random.default_rng(spec["seed"])
    C, F, V = spec["hidden_size"], spec["intermediate_size"], spec["vocab_size"]
    D = C // spec["n_heads"]
    q, kv = spec["n_heads"] * D, spec["n_kv_heads"] * D
    os.makedirs(out_dir, exist_ok=True)
    json.dump({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": C,
               "intermediate_size": F, "num_hidden_layers": spec["n_layers"],
               "num_attention_heads": spec["n_heads"], "num_key_value_heads": spec["n_kv_heads"],
               "vocab_size": V, "max_position_embeddings": spec["context"], "rms_norm_eps": 1e-5,
               "rope_theta": 10000.0, "tie_word_embeddings": spec["tied"], "bos_token_id": 1,
               "eos_token_id": 2}, open(os.path.join(out_dir, "config.json"), "w"))

    def mat(rows, cols, gain=1.0):
        w = (rng.standard_normal((rows, cols)) * 0.02 * gain).astype(np.float32)
        if round_trip is not None:
            w = quants.dequantize(quants.quantize(w, round_trip), round_trip).astype(np.float32)
        return w.reshape(rows, cols)

    t = {"model.embed_tokens.weight": mat(V, C, 4.0),
         "model.norm.weight": (1.0 + 0.1 * rng.standard_normal(C)).astype(np.float32)}
    if not spec["tied"]:
        t["lm_head.weight"] = mat(V, C)
    for l in range(spec["n_layers"]):
        p = f"model.layers.{l}."
        t[p + "input_layernorm.weight"] = (1.0 + 0.1 * rng.standard_normal(C)).astype(np.float32)
        t[p + "post_attention_layernorm.weight"] = (1.0 + 0.1 * rng.standard_normal(C)).astype(np.float32)
        for name, rows, cols in (("self_attn.q_proj", q, C), ("self_attn.k_proj", kv, C),
                                 ("self_attn.v_proj", kv, C), ("self_attn.o_proj", C, q),
                                 ("mlp.gate_proj", F, C), ("mlp.up_proj", F, C),
                                 ("mlp.down_proj", C, F)):
            t[p + name + ".weight"] = mat(rows, cols)
    save_file(t, os.path.join(out_dir, "model.safetensors"))
