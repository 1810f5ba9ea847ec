#!/usr/bin/env python3
"""`medtune merge` against independent references.

usage: check_merge.py f32|bf16|sharded|smollm2|rss

f32, sharded and bf16 run on a random-weight llama (GQA, odd sizes) and, when ../shared is
there, on tinystories-656k:
f32      the base + the adapter of a real training run: merged-model logits equal
         base+adapter logits (lm_logits on both) within 1e-4.
sharded  a random rsLoRA adapter merged with a --max-shard-size that makes several shards: shards + index as
         transformers writes them, every tensor the adapter does not touch byte-identical to
         the input, logits within 1e-4.
bf16     the base converted to BF16 by torch: each merged weight equals torch's
         (W.float() + scale * B @ A).to(bfloat16), other tensors byte-identical; logits within
         1e-4 + the logit effect of rounding the merged weights to bf16, measured as the same
         merge into the exact F32 upcast of that base (itself within 1e-4 of base+adapter).
smollm2  the real SmolLM2-135M-Instruct Q4_1 GGUF merged to F32 (and F16): the merged model
         agrees with base+adapter within max(1e-4, 2 e), e the fp32 error of base+adapter
         itself against a float64 PyTorch twin (SmolLM2's residual stream reaches 2e4, so
         fp32 summation order alone moves its logits by ~1e-4); peak RSS reported.
rss      a generated 430 MB F32 model: the merge's peak RSS stays below a third of the model.
"""
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_lib import (fail, for_each_base, helper, is_tinystories, medtune_logits,  # noqa: E402
                    peft_scale, run_measured, random_adapter, read_peft, run, skip, smollm2, test_tokens,
                    trained_run, work_dir)


def compare(base, adapter, merged, tol):
    p = helper(["compare", base, adapter, merged, repr(tol)], expect=None)
    print(p.stdout.strip())
    if p.returncode != 0:
        fail(f"compare {merged}: {p.stdout}{p.stderr}")


def merge_f32(work, model):
    out = trained_run(work, model)
    run(["export", out, os.path.join(work, "adapter")])
    merged = os.path.join(work, "merged")
    run(["merge", model, os.path.join(work, "adapter"), merged])
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
              "generation_config.json"]:
        if open(os.path.join(model, f), "rb").read() != open(os.path.join(merged, f), "rb").read():
            fail(f"{f} not copied unchanged")
    compare(model, os.path.join(work, "adapter"), merged, 1e-4)


def st_tensors(path):
    """{name: (dtype, shape, raw bytes)} read by the safetensors package's own parser."""
    from safetensors import safe_open
    out = {}
    with safe_open(path, framework="numpy") as f:
        for k in f.keys():
            out[k] = f.get_tensor(k)
    return out


def merge_sharded(work, model):
    adapter = random_adapter(work, model, "rs_adapter", r=8, alpha=4, seed=5, rslora=1)
    merged = os.path.join(work, "merged")
    # Several shards of either base: tinystories is 2.6 MB, the random llama 0.4 MB.
    shard = "256K" if is_tinystories(model) else "100K"
    p = run(["merge", model, adapter, merged, "--max-shard-size", shard])
    print(p.stderr.strip())
    index = json.load(open(os.path.join(merged, "model.safetensors.index.json")))
    files = sorted(set(index["weight_map"].values()))
    if len(files) < 3 or os.path.exists(os.path.join(merged, "model.safetensors")):
        fail(f"expected several shards, got {files}")
    n = len(files)
    if files != [f"model-{i:05d}-of-{n:05d}.safetensors" for i in range(1, n + 1)]:
        fail(f"shard names {files}")
    got = {}
    for f in files:
        t = st_tensors(os.path.join(merged, f))
        for k in t:
            if index["weight_map"][k] != f:
                fail(f"{k} is in {f}, the index says {index['weight_map'][k]}")
        got.update(t)
    size = sum(v.nbytes for v in got.values())
    if index["metadata"]["total_size"] != size:
        fail(f"total_size {index['metadata']['total_size']} != {size}")
    base = st_tensors(os.path.join(model, "model.safetensors"))
    if set(base) != set(got):
        fail(f"tensor sets differ: {sorted(set(base) ^ set(got))}")
    cfg, lora = read_peft(adapter)
    changed = {k.replace("base_model.model.", "").replace(".lora_A.weight", ".weight")
               for k in lora if "lora_A" in k}
    for k, v in base.items():
        if k in changed:
            a = lora[f"base_model.model.{k[:-7]}.lora_A.weight"].astype(np.float64)
            b = lora[f"base_model.model.{k[:-7]}.lora_B.weight"].astype(np.float64)
            want = v.astype(np.float64) + peft_scale(cfg) * (b @ a)
            err = np.abs(got[k].astype(np.float64) - want).max()
            if err > 1e-6:
                fail(f"{k}: merged weight off by {err}")
        elif v.tobytes() != got[k].tobytes() or v.dtype != got[k].dtype:
            fail(f"{k}: not copied byte for byte")
    print(f"ok: {n} shards, index consistent, {len(changed)} merged weights within 1e-6 of "
          f"float64 W + scale B A (rsLoRA scale {peft_scale(cfg):.4f}), the rest byte-identical")
    compare(model, adapter, merged, 1e-4)


def merge_bf16(work, model):
    import torch
    from safetensors.torch import load_file, save_file
    bf16 = os.path.join(work, "base-bf16")
    os.makedirs(bf16)
    w = load_file(os.path.join(model, "model.safetensors"))
    save_file({k: v.to(torch.bfloat16) for k, v in w.items()},
              os.path.join(bf16, "model.safetensors"), metadata={"format": "pt"})
    conf = json.load(open(os.path.join(model, "config.json")))
    conf["torch_dtype"] = "bfloat16"
    json.dump(conf, open(os.path.join(bf16, "config.json"), "w"))
    adapter = random_adapter(work, bf16, "adapter", r=8, alpha=16, seed=9)
    merged = os.path.join(work, "merged")
    run(["merge", bf16, adapter, merged])
    got = load_file(os.path.join(merged, "model.safetensors"))
    cfg, lora = read_peft(adapter)
    n_merged, n_ulp, n_total = 0, 0, 0
    for k, v in load_file(os.path.join(bf16, "model.safetensors")).items():
        if got[k].dtype != torch.bfloat16:
            fail(f"{k}: dtype {got[k].dtype}, expected bfloat16")
        stem = f"base_model.model.{k[:-7]}"
        if stem + ".lora_A.weight" in lora:
            a = torch.from_numpy(lora[stem + ".lora_A.weight"])
            b = torch.from_numpy(lora[stem + ".lora_B.weight"])
            want = (v.float() + peft_scale(cfg) * (b @ a)).to(torch.bfloat16)
            bits = (got[k].view(torch.int16).int() - want.view(torch.int16).int()).abs()
            if bits.max() > 1:
                fail(f"{k}: merged bf16 weight differs from torch's by {bits.max()} ulp")
            n_ulp += int((bits == 1).sum())
            n_total += bits.numel()
            n_merged += 1
        elif not torch.equal(v.view(torch.int16), got[k].view(torch.int16)):
            fail(f"{k}: not copied bit for bit")
    # fp32 sums in another order can land on the other side of a bf16 rounding boundary.
    if n_ulp > 0.001 * n_total:
        fail(f"{n_ulp} of {n_total} merged weights 1 ulp off torch's rounding")
    print(f"ok: {n_merged} merged BF16 weights equal torch's round-to-nearest-even "
          f"({n_ulp} of {n_total} elements 1 ulp off from fp32 summation order)")
    # The same merge in fp32 (the BF16 base upcast exactly) isolates the one thing the BF16
    # output adds: rounding each merged weight to bf16. Its logit effect is the tolerance.
    f32 = os.path.join(work, "upcast-f32")
    os.makedirs(f32)
    save_file({k: v.float() for k, v in load_file(os.path.join(bf16, "model.safetensors")).items()},
              os.path.join(f32, "model.safetensors"), metadata={"format": "pt"})
    conf["torch_dtype"] = "float32"
    json.dump(conf, open(os.path.join(f32, "config.json"), "w"))
    run(["merge", f32, adapter, os.path.join(work, "merged_f32")])
    compare(f32, adapter, os.path.join(work, "merged_f32"), 1e-4)
    rounding = np.abs(medtune_logits(work, os.path.join(work, "merged_f32"), tag="m32") -
                      medtune_logits(work, merged, tag="m16")).max()
    print(f"logit effect of storing the merged weights in bf16 (same merge in F32 vs BF16): "
          f"{rounding:.3g}")
    compare(bf16, adapter, merged, float(rounding) + 1e-4)


def twin_logits64(model, adapter):
    """Float64 logits of base + adapter from the PyTorch twin (tests/twin)."""
    import torch
    from llama import Twin
    from model_io import load_model
    cfg, weights = load_model(model)
    pcfg, lora = read_peft(adapter)
    lora = {k: torch.from_numpy(v).double() for k, v in lora.items()}
    if "lm_head.weight" not in weights:
        weights["lm_head.weight"] = weights["model.embed_tokens.weight"]
    twin = Twin(cfg, weights, lora, peft_scale(pcfg), dtype=torch.float64)
    tokens = torch.from_numpy(test_tokens(cfg["vocab_size"]))
    pos = torch.arange(tokens.shape[1])[None].expand_as(tokens)
    with torch.no_grad():
        out = twin.forward(tokens, pos, torch.zeros_like(tokens))
    return out.reshape(tokens.numel(), -1).numpy()


def case_smollm2():
    model = smollm2()
    if not model:
        skip("SmolLM2-135M-Instruct.Q4_1.gguf is absent (tools/fetch_smollm2.sh fetches it)")
    work = work_dir("merge_smollm2")
    adapter = random_adapter(work, model, "adapter", r=8, alpha=16,
                             targets="q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj",
                             seed=3)
    merged = os.path.join(work, "merged")
    text, rss = run_measured(["merge", model, adapter, merged])
    print(text.strip())
    size = os.path.getsize(os.path.join(merged, "model.safetensors")) / 2**20
    print(f"peak RSS of the merge: {rss:.0f} MiB for a {size:.0f} MiB F32 output "
          f"(largest tensor: the 49152 x 576 embedding, 108 MiB in fp32)")
    conf = json.load(open(os.path.join(merged, "config.json")))
    if conf["architectures"] != ["LlamaForCausalLM"] or not conf["tie_word_embeddings"]:
        fail(f"generated config.json: {conf}")
    with_adapter = medtune_logits(work, model, adapter, tag="base_adapter")
    got = medtune_logits(work, merged, tag="merged")
    exact = twin_logits64(model, adapter)
    e_ref = np.abs(with_adapter - exact).max()
    e_merged = np.abs(got - exact).max()
    d = np.abs(got - with_adapter).max()
    # fp32 budget of these logits (max |logit| ~ 30, sums over up to 1536 terms): both paths
    # measured 0.8-1.25e-4 from the float64 twin, summed in different orders (W + BA first, or
    # the LoRA product added after), so their difference may approach the sum of the two.
    tol = 2e-4
    effect = np.abs(medtune_logits(work, model, tag="base") - with_adapter).max()
    print(f"merged vs base+adapter {d:.3g}; vs float64 twin: base+adapter {e_ref:.3g}, merged "
          f"{e_merged:.3g} (each within {tol:.3g}); adapter effect {effect:.3g}")
    if d > tol or e_ref > tol or e_merged > tol or effect < 100 * tol:
        fail("merged GGUF model does not match base+adapter")
    f16 = os.path.join(work, "merged_f16")
    run(["merge", model, adapter, f16, "--dtype", "f16"])
    from safetensors import safe_open
    with safe_open(os.path.join(f16, "model.safetensors"), framework="numpy") as f:
        dtypes = {str(f.get_tensor(k).dtype) for k in f.keys()}
    if dtypes != {"float16"} or json.load(open(os.path.join(f16, "config.json")))["torch_dtype"] != "float16":
        fail(f"--dtype f16 wrote {dtypes}")
    d16 = np.abs(medtune_logits(work, f16, tag="merged_f16") - with_adapter).max()
    print(f"ok: --dtype f16 output is all F16; its logits are {d16:.3g} from base+adapter")
    print("PASS")


def case_rss():
    work = work_dir("merge_rss")
    base = os.path.join(work, "big")
    spec = {"arch": "llama", "hidden_size": 1024, "intermediate_size": 2816, "n_layers": 6,
            "n_heads": 16, "n_kv_heads": 8, "head_dim": 64, "vocab_size": 16000, "tie": False,
            "rope_theta": 10000.0, "rope_scaling": None, "dtype": "F32", "seed": 4,
            "max_position_embeddings": 256}
    with open(os.path.join(work, "big.json"), "w") as f:
        json.dump(spec, f)
    # Generated in a child: a forked child's peak RSS includes its parent's pages before exec,
    # so this process stays small to measure the merge alone.
    make_model = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "twin",
                              "make_model.py")
    subprocess.run([sys.executable, make_model, os.path.join(work, "big.json"), base], check=True)
    size = os.path.getsize(os.path.join(base, "model.safetensors")) / 2**20
    adapter = random_adapter(work, base, "adapter", r=16, alpha=32, seed=2)
    text, rss = run_measured(["merge", base, adapter, os.path.join(work, "merged")])
    print(text.strip())
    print(f"peak RSS of the merge: {rss:.0f} MiB for a {size:.0f} MiB model (largest tensor "
          f"62.5 MiB)")
    if rss >= size / 3:
        fail(f"peak RSS {rss:.0f} MiB is not below a third of the {size:.0f} MiB model")
    compare(base, adapter, os.path.join(work, "merged"), 1e-4)


CASES = {"f32": lambda: for_each_base("merge_f32", merge_f32),
         "sharded": lambda: for_each_base("merge_sharded", merge_sharded),
         "bf16": lambda: for_each_base("merge_bf16", merge_bf16),
         "smollm2": case_smollm2, "rss": case_rss}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in CASES:
        print(__doc__)
        sys.exit(2)
    CASES[sys.argv[1]]()
