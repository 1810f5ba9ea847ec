"""`medtune info` on HF models and GGUF files, as text and --json; the JSON fields are checked
against config.json + the safetensors package, or GGUF metadata read by the gguf package. The
models: two random-weight HF directories (testlib.random_hf_model) and a Q8_0 GGUF written
from one with the gguf package, always; the shared stories260K and tinystories-656k and the
SmolLM2 GGUF when present. Also --help (exit 0) and usage errors (exit 2)."""
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import gguf
from safetensors import safe_open

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import load_ref  # noqa: E402
from testlib import random_hf_model  # noqa: E402

MEDTUNE = os.environ.get("MEDTUNE_BIN", "medtune")
SHARED = os.environ.get("MEDTUNE_SHARED", "")
SMOL = os.path.join(os.environ.get("MEDTUNE_CACHE", ""), "SmolLM2-135M-Instruct.Q4_1.gguf")
failures = []


def expect(name, got, want):
    if got != want:
        failures.append(f"{name}: got {got!r}, expected {want!r}")


def info(path):
    t = subprocess.run([MEDTUNE, "info", path], capture_output=True, text=True)
    j = subprocess.run([MEDTUNE, "info", path, "--json"], capture_output=True, text=True)
    expect(f"{path}: text exit", (t.returncode, t.stderr), (0, ""))
    expect(f"{path}: json exit", (j.returncode, j.stderr), (0, ""))
    lines = j.stdout.splitlines()
    expect(f"{path}: json lines", len(lines), 1)
    return t.stdout, json.loads(lines[0])


def check_hf(d):
    cfg = json.load(open(os.path.join(d, "config.json")))
    text, o = info(d)
    with safe_open(os.path.join(d, "model.safetensors"), framework="np") as f:
        stored = {k: f.get_slice(k).get_shape() for k in f.keys()}
    # Every model here is tied and stores the [V, C] matrix once (as embed or lm_head).
    n_params = sum(math.prod(s) for s in stored.values())
    want = {
        "architecture": cfg["model_type"], "n_params": n_params,
        "hidden_size": cfg["hidden_size"], "intermediate_size": cfg["intermediate_size"],
        "n_layers": cfg["num_hidden_layers"], "n_heads": cfg["num_attention_heads"],
        "n_kv_heads": cfg["num_key_value_heads"],
        "head_dim": cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"],
        "vocab_size": cfg["vocab_size"], "max_position_embeddings": cfg["max_position_embeddings"],
        "rms_norm_eps": cfg["rms_norm_eps"], "rope_theta": cfg["rope_theta"],
        "tie_word_embeddings": cfg["tie_word_embeddings"], "bos_token_id": cfg["bos_token_id"],
        "eos_token_ids": [cfg["eos_token_id"]], "format": "safetensors", "source_dtypes": "F32",
        "weights_bytes": 4 * n_params, "rope_scaling": {"type": "none"},
    }
    for k, v in want.items():
        expect(f"{d}: {k}", o.get(k), v)
    for needle in ("architecture         llama", f"hidden_size          {cfg['hidden_size']}",
                   f"parameters           {n_params} "):
        if needle not in text:
            failures.append(f"{d}: text output lacks {needle!r}:\n{text}")


def check_gguf(path):
    r = gguf.GGUFReader(path)
    f = lambda k: r.fields[k].contents()
    arch = f("general.architecture")
    text, o = info(path)
    n_params = sum(int(t.n_elements) for t in r.tensors)
    embd = next(t for t in r.tensors if t.name == "token_embd.weight")
    want = {
        "architecture": arch, "n_params": n_params,
        "hidden_size": f(f"{arch}.embedding_length"), "intermediate_size": f(f"{arch}.feed_forward_length"),
        "n_layers": f(f"{arch}.block_count"), "n_heads": f(f"{arch}.attention.head_count"),
        "n_kv_heads": f(f"{arch}.attention.head_count_kv"), "vocab_size": int(embd.shape[1]),
        "max_position_embeddings": f(f"{arch}.context_length"),
        "rope_theta": f(f"{arch}.rope.freq_base"),
        "tie_word_embeddings": not any(t.name == "output.weight" for t in r.tensors),
        "bos_token_id": f("tokenizer.ggml.bos_token_id"), "eos_token_ids": [f("tokenizer.ggml.eos_token_id")],
        "format": "gguf", "tokenizer": f("tokenizer.ggml.model") + " (gguf)",
        # Matrices as the file stores them, 1-D tensors (norms, biases) in fp32.
        "weights_bytes": sum(int(t.n_bytes) if len(t.shape) == 2 else 4 * int(t.n_elements)
                             for t in r.tensors),
    }
    # Every matrix is read from the mapping, except llama's Q and K, whose rows are put in
    # Hugging Face order once (an owned copy in the stored type).
    qk = sum(int(t.n_bytes) for t in r.tensors if arch == "llama" and
             (t.name.endswith("attn_q.weight") or t.name.endswith("attn_k.weight")))
    expect(f"{path}: weights_owned_bytes", o.get("weights_owned_bytes"), qk)
    expect(f"{path}: weights_mapped_bytes", o.get("weights_mapped_bytes"),
           sum(int(t.n_bytes) for t in r.tensors if len(t.shape) == 2) - qk)
    for k, v in want.items():
        expect(f"{path}: {k}", o.get(k), v)
    expect(f"{path}: rms_norm_eps", np.float32(o["rms_norm_eps"]), np.float32(f(f"{arch}.attention.layer_norm_rms_epsilon")))
    types = {t.tensor_type.name for t in r.tensors}
    expect(f"{path}: source_dtypes", set(o["source_dtypes"].split("+")), types)
    if f"architecture         {arch}" not in text:
        failures.append(f"{path}: text output lacks the architecture:\n{text}")


def check_usage():
    h = subprocess.run([MEDTUNE, "info", "--help"], capture_output=True, text=True)
    expect("--help exit", h.returncode, 0)
    if "--json" not in h.stdout:
        failures.append("--help does not list --json")
    for args in ([], ["--bogus", "x"], ["a", "b"]):
        u = subprocess.run([MEDTUNE, "info", *args], capture_output=True, text=True)
        expect(f"info {args} exit", u.returncode, 2)


def main():
    tmp = tempfile.mkdtemp(prefix="medtune_info_")
    try:
        a = random_hf_model(os.path.join(tmp, "random-a"))
        b = random_hf_model(os.path.join(tmp, "random-b"), hidden_size=60, intermediate_size=150,
                            n_layers=3, n_heads=6, n_kv_heads=2, head_dim=12, rope_theta=50000.0,
                            seed=9)
        for d in (a, b):
            check_hf(d)
        q8 = os.path.join(tmp, "random-a.q8_0.gguf")
        load_ref.write_gguf_from_hf(a, q8, load_ref.Q.Q8_0)
        check_gguf(q8)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    models = os.path.join(SHARED, "models")
    if os.path.isdir(models):
        for name in ("stories260K", "tinystories-656k"):
            check_hf(os.path.join(models, name))
    else:
        print(f"note: {models} absent, the shared models not checked")
    if os.path.exists(SMOL):
        check_gguf(SMOL)
    else:
        print(f"note: {SMOL} absent, its GGUF info not checked")
    check_usage()
    if failures:
        print("FAIL:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print("info: text and --json match config.json / safetensors / gguf metadata")


if __name__ == "__main__":
    main()
