#!/usr/bin/env python3
"""Interop with Hugging Face PEFT and transformers (pinned in tests/requirements-peft.txt,
installed into .cache/venv-peft by tools/bootstrap.sh; this script re-executes itself there).

usage: check_peft.py tinystories|reverse|refusals|smollm2

tinystories, reverse and refusals run on a random-weight llama (GQA, odd sizes) and, when
../shared is there, on tinystories-656k:
tinystories  PeftModel.from_pretrained(LlamaForCausalLM of the base, medtune's exported
             adapter of a real run) gives medtune's base+adapter logits within 1e-4; the
             merged directory (single file and sharded) loads with transformers and gives the
             same logits within 1e-4.
reverse      an adapter saved by PEFT itself (get_peft_model + save_pretrained, rsLoRA, random
             B) loads through peft_adapter_load and gives PEFT's logits within 1e-4; medtune's
             merge equals PEFT's merge_and_unload weight for weight; it re-exports to GGUF.
refusals     a DoRA adapter, an embedding-LoRA adapter and an adapter saved for another model
             are refused with one line naming the field / tensor, exit 1.
smollm2      the SmolLM2 GGUF merged into a generated config.json + F32 safetensors loads with
             transformers: medtune's logits of the merged dir are as close to transformers'
             float64 logits as transformers' own fp32 logits are.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.environ.get("MEDTUNE_CACHE") or os.path.join(HERE, "../../.cache")
VENV_PY = os.path.join(CACHE, "venv-peft", "bin", "python")

if os.path.realpath(sys.prefix) != os.path.realpath(os.path.join(CACHE, "venv-peft")):
    if not os.path.exists(VENV_PY):
        print(f"SKIP: {VENV_PY} is absent: tools/bootstrap.sh installs PEFT and transformers "
              "from tests/requirements-peft.txt there")
        sys.exit(77)
    os.execv(VENV_PY, [VENV_PY] + sys.argv)

try:
    import peft  # noqa: E402
    import torch  # noqa: E402
    import transformers  # noqa: E402
except ImportError as e:
    print(f"SKIP: PEFT/transformers cannot be imported in {sys.prefix}: {e}")
    sys.exit(77)

import numpy as np  # noqa: E402

sys.path.insert(0, HERE)
from export_lib import (fail, for_each_base, is_tinystories, medtune_logits,  # noqa: E402
                    other_model, random_adapter, read_peft, run, skip, smollm2, test_tokens,
                    trained_run, work_dir)
from testlib import expect_error  # noqa: E402

torch.set_num_threads(2)
transformers.logging.set_verbosity_error()
transformers.logging.disable_progress_bar()


def hf_logits(model, dtype=torch.float32):
    ids = torch.from_numpy(test_tokens(model.config.vocab_size))
    with torch.no_grad():
        out = model.to(dtype)(input_ids=ids).logits
    return out.reshape(ids.numel(), -1).double().numpy()


def load_hf(path, dtype=torch.float32):
    return transformers.AutoModelForCausalLM.from_pretrained(path, torch_dtype=dtype).eval()


def expect_close(what, got, want, tol):
    d = float(np.abs(got - want).max())
    print(f"{what}: max |diff| {d:.3g} (tol {tol:.3g})")
    if not d <= tol:
        fail(f"{what} differs by {d:.3g}")


def peft_load(work, model):
    out = trained_run(work, model)
    adapter = os.path.join(work, "adapter")
    run(["export", out, adapter])
    want = medtune_logits(work, model, adapter, tag="medtune")
    base_only = medtune_logits(work, model, tag="base")
    print(f"adapter effect on the logits: {np.abs(want - base_only).max():.3g}")
    pm = peft.PeftModel.from_pretrained(load_hf(model), adapter).eval()
    expect_close("PEFT PeftModel.from_pretrained vs medtune", hf_logits(pm), want, 1e-4)
    shard = "300K" if is_tinystories(model) else "100K"  # several shards of either base
    for name, extra in [("merged", []), ("merged_sharded", ["--max-shard-size", shard])]:
        merged = os.path.join(work, name)
        run(["merge", model, adapter, merged] + extra)
        expect_close(f"transformers on {name} vs medtune base+adapter",
                     hf_logits(load_hf(merged)), want, 1e-4)


def peft_adapter(base_dir, out_dir, seed, **lora_kw):
    """Saves a PEFT LoRA adapter with random non-zero B; returns the PeftModel."""
    torch.manual_seed(seed)
    cfg = peft.LoraConfig(task_type="CAUSAL_LM", **lora_kw)
    pm = peft.get_peft_model(load_hf(base_dir), cfg)
    for n, p in pm.named_parameters():
        if "lora_B" in n or "lora_embedding_B" in n:
            torch.nn.init.normal_(p, std=0.05)
    pm.save_pretrained(out_dir)
    return pm.eval()


ALL = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def peft_reverse(work, model):
    adapter = os.path.join(work, "peft_adapter")
    pm = peft_adapter(model, adapter, 0, r=8, lora_alpha=16, target_modules=ALL,
                      use_rslora=True, lora_dropout=0.0)
    want = hf_logits(pm)
    expect_close("medtune (peft_adapter_load) vs PEFT", medtune_logits(work, model, adapter), want,
                 1e-4)
    merged = os.path.join(work, "merged")
    run(["merge", model, adapter, merged])
    ref = pm.merge_and_unload().state_dict()
    from safetensors.torch import load_file
    got = load_file(os.path.join(merged, "model.safetensors"))
    worst = max(float((got[k] - ref[k]).abs().max()) for k in got)
    print(f"medtune merge vs PEFT merge_and_unload: max weight diff {worst:.3g} over {len(got)} "
          "tensors")
    if worst > 1e-6:
        fail("merged weights differ from PEFT's merge_and_unload")
    run(["export", adapter, os.path.join(work, "a.gguf"), "--format", "gguf"])
    run(["info", adapter])


def peft_refusals(work, model):
    dora = os.path.join(work, "dora")
    peft_adapter(model, dora, 1, r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                 use_dora=True)
    expect_error(["merge", model, dora, os.path.join(work, "m1")], "use_dora")
    expect_error(["export", dora, os.path.join(work, "e1")], "use_dora")
    emb = os.path.join(work, "embedding")
    peft_adapter(model, emb, 2, r=4, lora_alpha=8, target_modules=["embed_tokens", "q_proj"])
    expect_error(["merge", model, emb, os.path.join(work, "m2")], "embed_tokens")
    other = other_model(work, model)
    foreign = os.path.join(work, "other_adapter")
    peft_adapter(other, foreign, 3, r=4, lora_alpha=8, target_modules=["q_proj"])
    _, tensors = read_peft(foreign)
    expect_error(["merge", model, foreign, os.path.join(work, "m3")], "q_proj.lora_A.weight",
                   "shape")
    expect_error(["export", foreign, os.path.join(work, "e3"), "--model", model], "shape")
    for d in ["m1", "m2", "m3", "m1.partial", "e1", "e3"]:
        if os.path.exists(os.path.join(work, d)):
            fail(f"a refused command left {d} behind")


def case_smollm2():
    base = smollm2()
    if not base:
        skip("SmolLM2-135M-Instruct.Q4_1.gguf is absent (tools/fetch_smollm2.sh fetches it)")
    work = work_dir("peft_smollm2")
    adapter = random_adapter(work, base, "adapter", r=8, alpha=16, seed=4)
    merged = os.path.join(work, "merged")
    run(["merge", base, adapter, merged])
    ours = medtune_logits(work, merged, tag="medtune_merged")
    hf = load_hf(merged)
    exact = hf_logits(hf, torch.float64)
    hf32 = hf_logits(hf, torch.float32)
    e_hf = float(np.abs(hf32 - exact).max())
    e_ours = float(np.abs(ours - exact).max())
    print(f"vs transformers float64 on the merged dir: transformers fp32 {e_hf:.3g}, medtune "
          f"{e_ours:.3g}; max |logit| {np.abs(exact).max():.3g}")
    if e_ours > max(1e-4, 3 * e_hf):
        fail("medtune and transformers disagree on the generated SmolLM2 directory")
    print("PASS")


CASES = {"tinystories": lambda: for_each_base("peft_tinystories", peft_load),
         "reverse": lambda: for_each_base("peft_reverse", peft_reverse),
         "refusals": lambda: for_each_base("peft_refusals", peft_refusals),
         "smollm2": case_smollm2}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in CASES:
        print(__doc__)
        sys.exit(2)
    print(f"peft {peft.__version__}, transformers {transformers.__version__}, torch "
          f"{torch.__version__}")
    CASES[sys.argv[1]]()
