"""Random-weight phi3 and gpt2 GGUF files written here with numpy and gguf-py, laid out as
llama.cpp's convert_hf_to_gguf.py lays out a converted checkpoint: phi3 with fused attn_qkv
([q; k; v] rows) and fused ffn_up ([gate; up] rows), partial rotary in rope.dimension_count;
gpt2 with its Conv1D weights transposed to [out, in] (ne [in, out]), LayerNorm and projection
biases, learned positions in position_embd and the head tied to token_embd (no output.weight).
Both carry a SentencePiece-style vocabulary (<unk> <s> </s>, 256 byte tokens, filler pieces) so
llama.cpp loads them; the tests feed token ids. Nothing here comes from medtune's writers.
Sizes suit every GGUF type medtune writes (rows of 256: K-quants)."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "weight"))
from weight_lib import add_spm_vocab  # noqa: E402

PHI3 = {"arch": "phi3", "hidden": 256, "ff": 512, "layers": 2, "heads": 4, "kv_heads": 2,
        "rope_dims": 32, "vocab": 512, "ctx": 128, "eps": 1e-5, "theta": 10000.0, "seed": 41}
GPT2 = {"arch": "gpt2", "hidden": 256, "ff": 1024, "layers": 2, "heads": 4, "vocab": 512,
        "ctx": 64, "eps": 1e-5, "seed": 43}


def add_vocab(w, vocab):
    add_spm_vocab(w, vocab)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)


def write_random_gguf(spec, path):
    """The GGUF file of a random model of `spec` (PHI3 or GPT2, with changes) at path (F32)."""
    import gguf
    s = spec
    rng = np.random.default_rng(s["seed"])
    C, F, V = s["hidden"], s["ff"], s["vocab"]

    def mat(rows, cols, std=None):
        # std 1/sqrt(cols): every projection keeps its input's scale, so the logits stay O(1)
        # and every layer matters.
        return (rng.standard_normal((rows, cols)) * (std or cols ** -0.5)).astype(np.float32)

    def vec(n, mean, std):
        return (mean + std * rng.standard_normal(n)).astype(np.float32)

    w = gguf.GGUFWriter(path, s["arch"])
    w.add_block_count(s["layers"])
    w.add_context_length(s["ctx"])
    w.add_embedding_length(C)
    w.add_feed_forward_length(F)
    w.add_head_count(s["heads"])
    w.add_file_type(0)
    add_vocab(w, V)
    if s["arch"] == "phi3":
        D = C // s["heads"]
        w.add_head_count_kv(s["kv_heads"])
        w.add_layer_norm_rms_eps(s["eps"])
        w.add_rope_dimension_count(s["rope_dims"])
        w.add_rope_freq_base(s["theta"])
        w.add_rope_scaling_orig_ctx_len(s["ctx"])
        w.add_sliding_window(0)
        w.add_tensor("token_embd.weight", mat(V, C, 1.0))
        w.add_tensor("output_norm.weight", vec(C, 1.0, 0.2))
        w.add_tensor("output.weight", mat(V, C))
        qkv = (s["heads"] + 2 * s["kv_heads"]) * D
        for l in range(s["layers"]):
            w.add_tensor(f"blk.{l}.attn_norm.weight", vec(C, 1.0, 0.2))
            w.add_tensor(f"blk.{l}.attn_qkv.weight", mat(qkv, C))
            w.add_tensor(f"blk.{l}.attn_output.weight", mat(C, s["heads"] * D))
            w.add_tensor(f"blk.{l}.ffn_norm.weight", vec(C, 1.0, 0.2))
            w.add_tensor(f"blk.{l}.ffn_up.weight", mat(2 * F, C))
            w.add_tensor(f"blk.{l}.ffn_down.weight", mat(C, F))
    else:
        w.add_layer_norm_eps(s["eps"])
        w.add_tensor("token_embd.weight", mat(V, C, 1.0))
        w.add_tensor("position_embd.weight", mat(s["ctx"], C, 0.3))
        w.add_tensor("output_norm.weight", vec(C, 1.0, 0.2))
        w.add_tensor("output_norm.bias", vec(C, 0.0, 0.1))
        for l in range(s["layers"]):
            for norm in ("attn_norm", "ffn_norm"):
                w.add_tensor(f"blk.{l}.{norm}.weight", vec(C, 1.0, 0.2))
                w.add_tensor(f"blk.{l}.{norm}.bias", vec(C, 0.0, 0.1))
            for name, rows, cols in (("attn_qkv", 3 * C, C), ("attn_output", C, C),
                                     ("ffn_up", F, C), ("ffn_down", C, F)):
                w.add_tensor(f"blk.{l}.{name}.weight", mat(rows, cols))
                w.add_tensor(f"blk.{l}.{name}.bias", vec(rows, 0.0, 0.1))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
