"""`medtune info` on broken models: each must exit 1 with exactly one stderr line
"medtune: error: <the bad file>: ..." naming the problem (no crash, no trace). The broken
models are made from a random-weight tinystories-shaped directory (testlib.random_hf_model),
and again from the shared tinystories-656k when present."""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import load_ref  # noqa: E402
from testlib import random_hf_model  # noqa: E402

MEDTUNE = os.environ.get("MEDTUNE_BIN", "medtune")
SHARED_TINY = os.path.join(os.environ.get("MEDTUNE_SHARED", ""), "models", "tinystories-656k")
TINY = None  # the model the broken copies are made from (main sets it)
failures = []


def check(name, path, file, needle):
    r = subprocess.run([MEDTUNE, "info", path], capture_output=True, text=True)
    lines = r.stderr.splitlines()
    prefix = f"medtune: error: {file}: "
    ok = r.returncode == 1 and len(lines) == 1 and lines[0].startswith(prefix) and needle in lines[0]
    print(f"{'ok  ' if ok else 'FAIL'} {name}: rc={r.returncode} {r.stderr.strip()!r}")
    if not ok:
        failures.append(f"{name}: expected rc 1 and one line '{prefix}...{needle}...'")


def hf_copy(tmp, name, **kw):
    d = os.path.join(tmp, name)
    load_ref.copy_hf_dir(TINY, d, **kw)
    return d


def rewrite_header(path, edit):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    edit(header)
    h = json.dumps(header).encode()
    h += b" " * (-(8 + len(h)) % 8)
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + raw[8 + n:])


def edit_config(d, **changes):
    p = os.path.join(d, "config.json")
    cfg = json.load(open(p))
    cfg.update(changes)
    json.dump(cfg, open(p, "w"))
    return p


def main():
    global TINY
    tmp = tempfile.mkdtemp(prefix="medtune_bad_")
    try:
        sources = [random_hf_model(os.path.join(tmp, "random"))]
        if os.path.isdir(SHARED_TINY):
            sources.append(SHARED_TINY)
        else:
            print(f"note: {SHARED_TINY} is absent: the random model only")
        for i, TINY in enumerate(sources):
            print(f"broken copies of {TINY}:")
            os.makedirs(os.path.join(tmp, str(i)))
            run(os.path.join(tmp, str(i)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print("\n".join(failures))
        sys.exit(1)


def run(tmp):
    d = hf_copy(tmp, "truncated")
    st = os.path.join(d, "model.safetensors")
    os.truncate(st, os.path.getsize(st) - 100)
    check("truncated safetensors", d, st, "truncated")

    d = hf_copy(tmp, "lying")
    st = os.path.join(d, "model.safetensors")
    rewrite_header(st, lambda h: h["model.norm.weight"]["data_offsets"].__setitem__(0, h["model.norm.weight"]["data_offsets"][0] + 4))
    check("offsets lie", d, st, "model.norm.weight: data_offsets")

    def shift(h):
        h["model.norm.weight"]["data_offsets"] = [x + 4 for x in h["model.norm.weight"]["data_offsets"]]
    d = hf_copy(tmp, "overlap")
    rewrite_header(st := os.path.join(d, "model.safetensors"), shift)
    check("offsets overlap", d, st, "model.norm.weight: gap in the data buffer")

    d = hf_copy(tmp, "dtype")
    st = os.path.join(d, "model.safetensors")
    rewrite_header(st, lambda h: h["model.norm.weight"].__setitem__("dtype", "F8_E5M2"))
    check("unknown dtype", d, st, "model.norm.weight: unknown dtype 'F8_E5M2'")

    d = hf_copy(tmp, "short_header")
    st = os.path.join(d, "model.safetensors")
    open(st, "wb").write(struct.pack("<Q", 1 << 40) + b"{}")
    check("header length", d, st, "header length")

    d = hf_copy(tmp, "missing")
    st = os.path.join(d, "model.safetensors")
    sd = load_ref.hf_state_dict(d)[0]
    del sd["model.layers.1.mlp.up_proj.weight"]
    load_ref.save_file({k: load_ref.torch.from_numpy(v) for k, v in sd.items()}, st)
    check("missing tensor", d, st, "model.layers.1.mlp.up_proj.weight: missing tensor")

    d = hf_copy(tmp, "shape")
    sd = load_ref.hf_state_dict(d)[0]
    sd["model.layers.0.mlp.down_proj.weight"] = sd["model.layers.0.mlp.down_proj.weight"].T.copy()
    load_ref.save_file({k: load_ref.torch.from_numpy(v) for k, v in sd.items()}, st := os.path.join(d, "model.safetensors"))
    check("wrong shape", d, st, "model.layers.0.mlp.down_proj.weight: shape [384, 128], expected [128, 384]")

    d = hf_copy(tmp, "shard")
    os.remove(os.path.join(d, "model.safetensors"))
    idx = os.path.join(d, "model.safetensors.index.json")
    json.dump({"weight_map": {"model.norm.weight": "missing.safetensors"}}, open(idx, "w"))
    check("missing shard", d, os.path.join(d, "missing.safetensors"), "cannot open")

    d = hf_copy(tmp, "noweights")
    os.remove(os.path.join(d, "model.safetensors"))
    check("no weights", d, d, "no model.safetensors")

    cases = [
        ("unknown architecture", {"model_type": "falcon"}, "model_type: unsupported architecture 'falcon' (supported: llama, mistral, qwen2, qwen3, gemma3_text, gemma3, phi3, gpt2)"),
        ("rope yarn", {"rope_scaling": {"rope_type": "yarn", "factor": 4.0}}, "rope_scaling: unsupported rope type 'yarn'"),
        ("rope dynamic", {"rope_scaling": {"type": "dynamic", "factor": 2.0}}, "rope_scaling: unsupported rope type 'dynamic'"),
        ("rope linear no factor", {"rope_scaling": {"type": "linear"}}, "rope_scaling.factor: missing"),
        ("mlp_bias", {"mlp_bias": True}, "mlp_bias: true is unsupported"),
        ("hidden_act", {"hidden_act": "gelu"}, "hidden_act: unsupported activation 'gelu'"),
        ("qwen2 sliding", {"model_type": "qwen2", "use_sliding_window": True}, "use_sliding_window: true is unsupported"),
        ("quantized", {"quantization_config": {"quant_method": "gptq"}}, "quantization_config"),
        ("missing field", {"hidden_size": None}, "hidden_size: missing"),
        ("bad field type", {"num_hidden_layers": "two"}, "num_hidden_layers: expected an integer"),
        ("bad kv heads", {"num_key_value_heads": 3}, "num_key_value_heads: 3 does not divide"),
        ("eos list", {"eos_token_id": [1, 2, 3, 4, 5, 6, 7, 8, 9]}, "eos_token_id: more than 8"),
        ("eos id out of range", {"eos_token_id": 1e30}, "eos_token_id: expected an integer"),
        ("gemma eos list", {"model_type": "gemma3_text", "hidden_act": None, "eos_token_id": list(range(9))},
         "eos_token_id: more than 8 ids"),
        ("gemma eos out of range", {"model_type": "gemma3_text", "hidden_act": None, "eos_token_id": [1, 1e30]},
         "eos_token_id: expected token ids (integers >= 0)"),
        ("gemma eos negative", {"model_type": "gemma3_text", "hidden_act": None, "eos_token_id": -1},
         "eos_token_id: expected token ids (integers >= 0)"),
        ("gemma attention softcap", {"model_type": "gemma3_text", "attn_logit_softcapping": 50.0},
         "attn_logit_softcapping: attention logit soft-capping (Gemma 2) is unsupported"),
        ("gemma bidirectional", {"model_type": "gemma3_text", "use_bidirectional_attention": True},
         "use_bidirectional_attention: true is unsupported"),
        ("gemma exact gelu", {"model_type": "gemma3_text", "hidden_activation": "gelu"},
         "hidden_activation: unsupported activation 'gelu' (supported: gelu_pytorch_tanh)"),
        ("gemma3 without text_config", {"model_type": "gemma3"}, "text_config: missing"),
        ("gemma rope yarn", {"model_type": "gemma3_text", "hidden_act": None, "rope_scaling": {"rope_type": "yarn", "factor": 8.0}},
         "rope_scaling.rope_type: unsupported rope type 'yarn' (supported: default, linear)"),
        ("gemma layer type", {"model_type": "gemma3_text", "hidden_act": None, "num_hidden_layers": 2,
                              "layer_types": ["sliding_attention", "chunked_attention"]},
         "layer_types[1]: unsupported layer type 'chunked_attention'"),
    ]
    for i, (name, change, needle) in enumerate(cases):
        d = os.path.join(tmp, f"cfg{i}")
        os.makedirs(d)
        shutil.copy(os.path.join(TINY, "model.safetensors"), d)
        cfg = json.load(open(os.path.join(TINY, "config.json")))
        cfg.update(change)
        json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
        check(name, d, os.path.join(d, "config.json"), needle)

    d = os.path.join(tmp, "malformed")
    os.makedirs(d)
    open(os.path.join(d, "config.json"), "w").write('{"model_type": "llama", "hidden_size": 12')
    check("malformed config.json", d, os.path.join(d, "config.json"), "not valid JSON")

    g = os.path.join(tmp, "q8.gguf")
    load_ref.write_gguf_from_hf(TINY, g, load_ref.Q.Q8_0)
    t = os.path.join(tmp, "truncated.gguf")
    open(t, "wb").write(open(g, "rb").read()[: os.path.getsize(g) // 2])
    check("truncated gguf", t, t, "truncated")
    t = os.path.join(tmp, "header_only.gguf")
    open(t, "wb").write(open(g, "rb").read()[:30])
    check("gguf cut in the metadata", t, t, "truncated")
    b = os.path.join(tmp, "magic.gguf")
    open(b, "wb").write(b"GGML" + open(g, "rb").read()[4:])
    check("bad gguf magic", b, b, "bad magic")

    # MXFP4: a type gguf-py writes and medtune does not decode (Q5_0 and the K-quants are
    # decoded since formats/quant).
    mx = os.path.join(tmp, "mxfp4.gguf")
    load_ref.write_gguf_from_hf(TINY, mx, load_ref.Q.MXFP4)
    check("unsupported gguf type", mx, mx,
          "tensor type MXFP4 is not supported (nearest supported: Q4_K)")

    w = load_ref.gguf.GGUFWriter(a := os.path.join(tmp, "arch.gguf"), "falcon")
    w.add_tensor("token_embd.weight", load_ref.np.zeros((4, 32), dtype=load_ref.np.float32))
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    check("unsupported gguf architecture", a, a, "general.architecture: unsupported architecture 'falcon'")

    txt = os.path.join(tmp, "notes.txt")
    open(txt, "w").write("hello\n")
    check("not a model", txt, txt, "not a model")
    check("no such path", os.path.join(tmp, "nope"), os.path.join(tmp, "nope"), "no such file")


if __name__ == "__main__":
    main()
