"""Independent computation of a model's weights_sha256 (docs/design.md, section 7): SHA-256
over the weight tensors in medtune's slot order, each as its file stores it - name, dtype
name, dimensions in the file's order, byte count, bytes - with lengths as little-endian u32
and dimensions and byte counts as u64. Safetensors headers are parsed here directly; GGUF
files are read with the gguf package (gguf-py)."""
import hashlib
import json
import os
import struct


def _layer_names(n_layers, bias, hf):
    names = []
    for l in range(n_layers):
        if hf:
            p = f"model.layers.{l}."
            names += [p + "input_layernorm.weight", p + "self_attn.q_proj.weight",
                      p + "self_attn.k_proj.weight", p + "self_attn.v_proj.weight"]
            if bias:
                names += [p + "self_attn.q_proj.bias", p + "self_attn.k_proj.bias",
                          p + "self_attn.v_proj.bias"]
            names += [p + "self_attn.o_proj.weight", p + "post_attention_layernorm.weight",
                      p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight",
                      p + "mlp.down_proj.weight"]
        else:
            p = f"blk.{l}."
            names += [p + "attn_norm.weight", p + "attn_q.weight", p + "attn_k.weight",
                      p + "attn_v.weight"]
            if bias:
                names += [p + "attn_q.bias", p + "attn_k.bias", p + "attn_v.bias"]
            names += [p + "attn_output.weight", p + "ffn_norm.weight", p + "ffn_gate.weight",
                      p + "ffn_up.weight", p + "ffn_down.weight"]
    return names


def _add(h, name, dtype, dims, data):
    for s in (name, dtype):
        b = s.encode()
        h.update(struct.pack("<I", len(b)) + b)
    h.update(struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims))
    h.update(struct.pack("<Q", len(data)))
    h.update(data)


def hf_weights_sha256(model_dir):
    """A single-file Hugging Face model directory."""
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    raw = open(os.path.join(model_dir, "model.safetensors"), "rb").read()
    n = struct.unpack_from("<Q", raw, 0)[0]
    header = json.loads(raw[8:8 + n])
    base = 8 + n
    tied = cfg.get("tie_word_embeddings", False)
    bias = cfg.get("model_type") == "qwen2" or cfg.get("attention_bias", False)
    names = ["model.embed_tokens.weight", "model.norm.weight"]
    if not tied:
        names.append("lm_head.weight")
    names += _layer_names(cfg["num_hidden_layers"], bias, True)
    h = hashlib.sha256()
    for name in names:
        if name not in header and tied and name == "model.embed_tokens.weight":
            name = "lm_head.weight"  # a tied model may store the matrix under this name only
        e = header[name]
        b, end = e["data_offsets"]
        _add(h, name, e["dtype"], e["shape"], raw[base + b:base + end])
    return h.hexdigest()


def gguf_weights_sha256(path):
    from gguf import GGUFReader
    r = GGUFReader(path)
    tensors = {t.name: t for t in r.tensors}
    arch = r.fields["general.architecture"].contents()
    n_layers = r.fields[f"{arch}.block_count"].contents()
    names = ["token_embd.weight", "output_norm.weight"]
    if "output.weight" in tensors:
        names.append("output.weight")
    names += _layer_names(n_layers, arch == "qwen2" or "blk.0.attn_q.bias" in tensors, False)
    h = hashlib.sha256()
    for name in names:
        t = tensors[name]
        _add(h, name, t.tensor_type.name, [int(d) for d in t.shape], t.data.tobytes())
    return h.hexdigest()
