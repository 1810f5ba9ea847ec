#!/usr/bin/env python3
"""`medtune export --format gguf` read by the gguf pip package (GGUFReader), checked against
what llama.cpp's convert_lora_to_gguf.py writes and llama-adapter.cpp requires:

- GGUF v3, tensor data 32-byte aligned; general.architecture (llama / qwen2), general.type
  "adapter", adapter.type "lora", adapter.lora.alpha float32 = scale * r (llama.cpp scales by
  alpha / r, so rsLoRA's alpha / sqrt(r) survives), general.quantization_version 2;
- one blk.N.<attn_q|...|ffn_down>.weight.lora_a / .lora_b pair per adapted projection, F32,
  lora_a ne [in, r], lora_b ne [r, out] (llama.cpp: model ne[0] == a.ne[0], model ne[1] ==
  b.ne[1], a.ne[1] == b.ne[0]);
- values: A equals the PEFT export's A; B equals PEFT's B, row-permuted for q/k of `llama` as
  the converter permutes base Q/K weights (reshape(heads, 2, D/2, r).swapaxes(1, 2)), plain
  for qwen2;
- SmolLM2 (a real llama.cpp GGUF): llama.cpp's view, base Q4_1 weight + alpha/r * B A in GGUF
  row order, un-permuted, equals `medtune merge`'s HF weight.

usage: check_gguf_adapter.py llama|qwen2|smollm2

llama: the checkpoint of a real run on a random-weight llama (GQA, odd sizes) and, when
../shared is there, on tinystories-656k; qwen2: a random adapter of a random qwen2 model.
"""
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_lib import (fail, for_each_base, random_adapter, read_peft, run, skip,  # noqa: E402
                    smollm2, trained_run, work_dir)
from merge_gguf_lib import GG, MODULE, permute as converter_permute  # noqa: E402


def field(reader, key):
    f = reader.fields.get(key)
    if f is None:
        fail(f"GGUF key {key} missing")
    return f


def check(gguf_path, peft_dir, arch, n_heads, n_kv_heads):
    from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType
    r = GGUFReader(gguf_path)
    cfg, lora = read_peft(peft_dir)
    rank = cfg["r"]
    scale = np.float32(cfg["lora_alpha"]) / (np.float32(np.sqrt(rank)) if cfg["use_rslora"]
                                             else np.float32(rank))
    want_kv = {"general.architecture": arch, "general.type": "adapter", "adapter.type": "lora"}
    for k, v in want_kv.items():
        f = field(r, k)
        if f.types != [GGUFValueType.STRING] or f.contents() != v:
            fail(f"{k} = {f.contents()!r} ({f.types}), expected {v!r}")
    alpha = field(r, "adapter.lora.alpha")
    if alpha.types != [GGUFValueType.FLOAT32]:
        fail(f"adapter.lora.alpha has type {alpha.types}, expected FLOAT32")
    # llama.cpp: scale = alpha / rank, rank = lora_a's ne[1].
    got_scale = np.float32(alpha.contents()) / np.float32(rank)
    if abs(got_scale - scale) > 1e-6 * abs(scale):
        fail(f"adapter.lora.alpha {alpha.contents()} gives scale {got_scale}, expected {scale}")
    qv = field(r, "general.quantization_version")
    if qv.types != [GGUFValueType.UINT32] or qv.contents() != 2:
        fail(f"general.quantization_version = {qv.contents()}")
    if not isinstance(field(r, "general.name").contents(), str):
        fail("general.name is not a string")
    if field(r, "GGUF.version").contents() != 3:
        fail("not GGUF v3")

    tensors = {t.name: t for t in r.tensors}
    expected = set()
    for name, a in lora.items():
        if ".lora_A." not in name:
            continue
        layer = int(name.split(".layers.")[1].split(".")[0])
        proj = name.split(".lora_A.")[0].rsplit(".", 1)[1]
        b = lora[name.replace("lora_A", "lora_B")]
        stem = f"blk.{layer}.{GG[proj]}.weight"
        expected |= {stem + ".lora_a", stem + ".lora_b"}
        ta, tb = tensors.get(stem + ".lora_a"), tensors.get(stem + ".lora_b")
        if ta is None or tb is None:
            fail(f"{stem}.lora_a/.lora_b missing")
        for t in (ta, tb):
            if t.tensor_type != GGMLQuantizationType.F32:
                fail(f"{t.name}: type {t.tensor_type.name}, expected F32")
            if t.data_offset % 32:
                fail(f"{t.name}: data at file offset {t.data_offset}, not 32-byte aligned")
        out_dim, in_dim = b.shape[0], a.shape[1]
        if list(ta.shape) != [in_dim, rank] or list(tb.shape) != [rank, out_dim]:
            fail(f"{stem}: ne a {list(ta.shape)} b {list(tb.shape)}, expected [{in_dim}, {rank}]"
                 f" and [{rank}, {out_dim}]")
        ga = np.asarray(ta.data).reshape(rank, in_dim)
        gb = np.asarray(tb.data).reshape(out_dim, rank)
        if not np.array_equal(ga, a):
            fail(f"{stem}.lora_a differs from PEFT's A")
        want_b = b
        if arch == "llama" and proj in ("q_proj", "k_proj"):
            want_b = converter_permute(b, n_heads if proj == "q_proj" else n_kv_heads)
        if not np.array_equal(gb, want_b):
            fail(f"{stem}.lora_b differs from PEFT's B{' (permuted)' if want_b is not b else ''}")
    if set(tensors) != expected:
        fail(f"unexpected tensors: {sorted(set(tensors) ^ expected)[:5]}")
    print(f"ok: {os.path.basename(gguf_path)}: {arch}, {len(tensors)} F32 tensors, alpha "
          f"{alpha.contents():g} = scale {scale:g} x r {rank}, values equal the PEFT export")


def gguf_llama(work, model):
    out = trained_run(work, model, rslora=True)
    ckpt = os.path.join(out, "checkpoints", "step_00000003")
    run(["export", ckpt, os.path.join(work, "peft")])
    run(["export", ckpt, os.path.join(work, "adapter.gguf"), "--format", "gguf"])
    conf = json.load(open(os.path.join(model, "config.json")))
    check(os.path.join(work, "adapter.gguf"), os.path.join(work, "peft"), "llama",
          conf["num_attention_heads"], conf["num_key_value_heads"])
    # A run directory exports its latest checkpoint; OUT a directory receives adapter.gguf.
    run(["export", out, os.path.join(work, "latest"), "--format", "gguf"])
    run(["export", out, os.path.join(work, "latest_peft")])
    check(os.path.join(work, "latest", "adapter.gguf"), os.path.join(work, "latest_peft"),
          "llama", conf["num_attention_heads"], conf["num_key_value_heads"])


def case_qwen2():
    work = work_dir("gguf_qwen2")
    twin = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "twin")
    model = os.path.join(work, "qwen2")
    subprocess.run([sys.executable, os.path.join(twin, "make_model.py"),
                    os.path.join(twin, "models", "qwen2_bias.json"), model], check=True)
    adapter = random_adapter(work, model, "adapter", r=4, alpha=8, seed=6)
    run(["export", adapter, os.path.join(work, "adapter.gguf"), "--format", "gguf"])
    check(os.path.join(work, "adapter.gguf"), adapter, "qwen2", 4, 2)
    print("PASS")


def case_smollm2():
    from gguf import GGUFReader
    from gguf.quants import dequantize
    from safetensors.numpy import load_file
    base = smollm2()
    if not base:
        skip("SmolLM2-135M-Instruct.Q4_1.gguf is absent (tools/fetch_smollm2.sh fetches it)")
    work = work_dir("gguf_smollm2")
    adapter = random_adapter(work, base, "adapter", r=8, alpha=16, targets="q_proj,k_proj,v_proj",
                             seed=8, rslora=1)
    run(["export", adapter, os.path.join(work, "adapter.gguf"), "--format", "gguf"])
    br = GGUFReader(base)
    heads = int(br.fields["llama.attention.head_count"].contents())
    kv_heads = int(br.fields["llama.attention.head_count_kv"].contents())
    check(os.path.join(work, "adapter.gguf"), adapter, "llama", heads, kv_heads)
    run(["merge", base, adapter, os.path.join(work, "merged")])
    merged = load_file(os.path.join(work, "merged", "model.safetensors"))
    ar = GGUFReader(os.path.join(work, "adapter.gguf"))
    at = {t.name: t for t in ar.tensors}
    bt = {t.name: t for t in br.tensors}
    alpha = float(ar.fields["adapter.lora.alpha"].contents())
    worst = 0.0
    for layer in (0, 17, 29):
        for proj, n in (("q_proj", heads), ("k_proj", kv_heads), ("v_proj", None)):
            stem = f"blk.{layer}.{GG[proj]}.weight"
            t = bt[stem]
            w = dequantize(t.data, t.tensor_type).reshape([int(x) for x in reversed(t.shape)])
            a = np.asarray(at[stem + ".lora_a"].data)
            b = np.asarray(at[stem + ".lora_b"].data)
            rank = a.shape[0]
            applied = w.astype(np.float64) + alpha / rank * (b.astype(np.float64) @ a)
            if n:  # back to HF row order
                applied = applied.reshape(n, applied.shape[0] // n // 2, 2, -1).swapaxes(1, 2) \
                                 .reshape(applied.shape)
            got = merged[f"model.layers.{layer}.{MODULE[proj]}.{proj}.weight"]
            worst = max(worst, float(np.abs(got - applied).max()))
    print(f"llama.cpp's view (GGUF base + alpha/r B A, un-permuted) vs medtune merge: max "
          f"{worst:.3g}")
    if worst > 1e-5:
        fail("the GGUF adapter applied to the GGUF base does not give medtune's merged weights")
    print("PASS")


CASES = {"llama": lambda: for_each_base("gguf_llama", gguf_llama), "qwen2": case_qwen2, "smollm2": case_smollm2}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in CASES:
        print(__doc__)
        sys.exit(2)
    CASES[sys.argv[1]]()
