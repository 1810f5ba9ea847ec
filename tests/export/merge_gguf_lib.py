"""Helpers of the merge-into-GGUF tests (check_merge_gguf.py, check_merge_llama_cpp.py): a
random-weight llama written as a GGUF base the way llama.cpp's converter lays it out (Q/K rows
permuted, vectors F32, a complete SentencePiece-style vocabulary so llama.cpp loads it), a
trained medtune adapter, and the reference merge computed here with numpy from the PEFT
files."""
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "load"))
sys.path.insert(0, os.path.join(HERE, "..", "weight"))
from export_lib import SPEC, fresh_model, peft_scale, read_peft, run, trained_run  # noqa: E402
from load_ref import gguf_add_hf_shape, gguf_close, gguf_put  # noqa: E402
from load_ref import llama_cpp_permute as permute  # noqa: E402
from weight_lib import add_spm_vocab  # noqa: E402

import gguf  # noqa: E402
from gguf import GGMLQuantizationType as Q  # noqa: E402
from gguf.quants import dequantize  # noqa: E402

# K-quants need rows that are multiples of 256: hidden 256, intermediate 512, head_dim 64.
QSPEC = dict(SPEC, hidden_size=256, intermediate_size=512, n_heads=4, n_kv_heads=2,
             head_dim=64, vocab_size=512, seed=31)
GG = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
      "gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down"}
MODULE = {"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn",
          "o_proj": "self_attn", "gate_proj": "mlp", "up_proj": "mlp", "down_proj": "mlp"}
HF_OF = {"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
         **{v: f"{MODULE[k]}.{k}" for k, v in GG.items()}}


def hf_weights(model_dir):
    from safetensors.numpy import load_file
    return load_file(os.path.join(model_dir, "model.safetensors"))


def write_base(model_dir, path, qtype=Q.F32):
    """The HF model as a llama GGUF: matrices in qtype (gguf-py's quantizer), vectors F32."""
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    sd = hf_weights(model_dir)
    heads, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    vocab = cfg["vocab_size"]
    w = gguf.GGUFWriter(path, "llama")
    w.add_name("random-llama")
    gguf_add_hf_shape(w, cfg)
    w.add_rope_dimension_count(cfg["head_dim"])
    w.add_rope_freq_base(cfg["rope_theta"])
    w.add_file_type(0 if qtype == Q.F32 else 1 if qtype == Q.F16 else 7)
    # The tests feed token ids, so the pieces only have to make a loadable vocabulary.
    add_spm_vocab(w, vocab)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_chat_template("{% for m in messages %}{{ m['content'] }}{% endfor %}")

    def put(name, a):
        gguf_put(w, name, a, qtype)

    put("token_embd.weight", sd["model.embed_tokens.weight"])
    put("output_norm.weight", sd["model.norm.weight"])
    put("output.weight", sd["lm_head.weight"])
    for l in range(cfg["num_hidden_layers"]):
        for gg, hf in HF_OF.items():
            a = sd[f"model.layers.{l}.{hf}.weight"]
            if gg == "attn_q":
                a = permute(a, heads)
            elif gg == "attn_k":
                a = permute(a, kv)
            put(f"blk.{l}.{gg}.weight", a)
    gguf_close(w)
    return path


def random_base(work, qtype=Q.F32, **changes):
    """(HF model dir, GGUF base path) of a random llama of QSPEC shapes."""
    model = fresh_model(os.path.join(work, "random_llama"), QSPEC, **changes)
    return model, write_base(model, os.path.join(work, "base.gguf"), qtype)


def trained_adapter(work, model):
    """A PEFT export of a real medtune training run on `model` (all seven projections)."""
    out = trained_run(work, model)
    adapter = os.path.join(work, "adapter")
    run(["export", out, adapter])
    return adapter


def reference_merge(base_path, adapter_dir):
    """{tensor name: fp32 array in llama.cpp's row order} = the base dequantized by gguf-py plus
    scale * B A from the PEFT files, permuted for Q/K, computed in float64."""
    r = gguf.GGUFReader(base_path)
    heads = int(r.fields["llama.attention.head_count"].parts[-1][0])
    kv = int(r.fields["llama.attention.head_count_kv"].parts[-1][0])
    cfg, t = read_peft(adapter_dir)
    scale = peft_scale(cfg)
    out = {}
    for tensor in r.tensors:
        shape = [int(x) for x in reversed(tensor.shape)]
        w = dequantize(tensor.data, tensor.tensor_type).reshape(shape).astype(np.float64)
        parts = tensor.name.split(".")
        if parts[0] == "blk" and parts[2] in GG.values():
            proj = [k for k, v in GG.items() if v == parts[2]][0]
            stem = f"base_model.model.model.layers.{parts[1]}.{MODULE[proj]}.{proj}"
            if stem + ".lora_A.weight" in t:
                d = scale * (t[stem + ".lora_B.weight"].astype(np.float64)
                             @ t[stem + ".lora_A.weight"].astype(np.float64))
                if proj in ("q_proj", "k_proj"):
                    d = permute(d, heads if proj == "q_proj" else kv)
                w = w + d
        out[tensor.name] = w.astype(np.float32)
    return out
