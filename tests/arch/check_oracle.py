#!/usr/bin/env python3
"""medtune against transformers and PEFT themselves, in the oracle venv (tools/oracle_venv.sh;
skipped with the reason when it is absent).

usage: check_oracle.py CASE      (CASE: a key of arch_cases.CASES)

On a random-weight model that transformers' save_pretrained writes in fp32:
- medtune's logits (the training trunk and the KV-cache decoder) within 1e-5 of transformers'
  own forward, and the loss within 1e-5;
- with a PEFT LoRA adapter on every target (random non-zero B), the logits within 1e-5 and every
  LoRA gradient of the mean loss within 1e-4 relative (L2) of PEFT + autograd;
- after a few `medtune train` steps, the adapter `medtune export` writes, loaded by
  PeftModel.from_pretrained onto the transformers model, gives medtune's logits within 1e-5;
- for cases with a GGUF form, the same weights written with gguf-py as llama.cpp's converter
  writes them give transformers' logits within 1e-5.
Each check also prints transformers' own fp32 error against its float64 forward, so a bound
that fp32 cannot meet shows up as such.
"""
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from arch_lib import reexec_in_oracle  # noqa: E402

reexec_in_oracle()

import numpy as np  # noqa: E402
import peft  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

sys.path.insert(0, os.path.join(HERE, ".."))
from arch_cases import CASES  # noqa: E402
from arch_lib import (B, T, batch, hf_labels, medtune_outputs, run, tokenizer_dir,  # noqa: E402
                      write_gguf)
from fresh_lib import prep_sample  # noqa: E402
from testlib import fail, work_dir  # noqa: E402

torch.set_num_threads(2)
transformers.logging.set_verbosity_error()
TOL_LOGITS, TOL_LOSS, TOL_GRAD = 1e-5, 1e-5, 1e-4
# The checkpoint's dtype (case "dtype"), set by main: the models are run in fp32 from its
# weights, with Gemma's embedding scale cast to it as transformers does when it runs the
# checkpoint in its own dtype (embed_scale.to(weight.dtype): sqrt(68) = 8.2462 -> 8.25 in BF16).
CHECKPOINT_DTYPE = torch.float32


def make_model(case, out_dir):
    """Random weights (norms too, so 1 + w and q/k norms matter) saved by transformers."""
    vocab = tokenizer_dir(out_dir)
    cls = getattr(transformers, case["config_class"])
    if "text_config" in case["config"]:
        c = dict(case["config"])
        c["text_config"] = dict(c["text_config"], vocab_size=vocab)
        cfg = cls(**c)
    else:
        cfg = cls(vocab_size=vocab, **case["config"])
    torch.manual_seed(0)
    model = getattr(transformers, case["model_class"])(cfg).float().eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(p + 0.3 * torch.randn_like(p))
            elif name.endswith(".bias"):
                p.copy_(0.1 * torch.randn_like(p))
    model.to(CHECKPOINT_DTYPE).save_pretrained(out_dir)
    return load_hf(out_dir), vocab


def load_hf(path, dtype=torch.float32):
    import json
    arch = json.load(open(os.path.join(path, "config.json")))["architectures"][0]
    model = getattr(transformers, arch).from_pretrained(path, dtype=dtype).eval()
    for name, mod in model.named_modules():
        if hasattr(mod, "embed_scale"):
            mod.embed_scale = torch.tensor(mod.scalar_embed_scale).to(CHECKPOINT_DTYPE).to(dtype)
    return model


def hf_forward(model, tokens, targets):
    ids = torch.from_numpy(tokens.astype(np.int64))
    labels = torch.from_numpy(hf_labels(tokens, targets))
    out = model(input_ids=ids, labels=labels)
    return out.logits.reshape(B * T, -1), out.loss


def expect_close(what, got, want, tol, exact=None):
    d = float(np.abs(got.astype(np.float64) - want.astype(np.float64)).max())
    note = ""
    if exact is not None:
        note = (f"; vs float64: medtune {np.abs(got - exact).max():.3g}, transformers fp32 "
                f"{np.abs(want - exact).max():.3g}")
    print(f"{what}: max |diff| {d:.3g} (tol {tol:.3g}){note}")
    if not d <= tol:
        fail(f"{what} differs by {d:.3g} > {tol:.3g}")


def check_base(work, model_dir, hf, vocab):
    tokens, targets = batch(vocab)
    with torch.no_grad():
        logits, loss = hf_forward(hf, tokens, targets)
        logits64, _ = hf_forward(load_hf(model_dir, torch.float64), tokens, targets)
    ours = medtune_outputs(work, model_dir, None, tokens, targets, "base")
    want, exact = logits.numpy(), logits64.numpy()
    print(f"max |logit| {np.abs(want).max():.3g}")
    expect_close("logits (lm_logits) vs transformers", ours["logits"], want, TOL_LOGITS, exact)
    expect_close("logits (KV-cache decoder) vs transformers", ours["decoder_logits"], want,
                 TOL_LOGITS, exact)
    print(f"loss: medtune {ours['loss'][0]:.7f}, transformers {loss.item():.7f}")
    expect_close("loss vs transformers", ours["loss"], np.array([loss.item()]), TOL_LOSS)
    return tokens, targets


def peft_model(model_dir, targets, adapter_dir, seed=1):
    torch.manual_seed(seed)
    cfg = peft.LoraConfig(task_type="CAUSAL_LM", r=4, lora_alpha=8, lora_dropout=0.0,
                          target_modules=targets)
    pm = peft.get_peft_model(load_hf(model_dir), cfg)
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_B" in n:
                p.copy_(0.2 * torch.randn_like(p))
    pm.save_pretrained(adapter_dir)
    return pm


def check_lora(work, model_dir, case, tokens, targets):
    adapter = os.path.join(work, "peft_adapter")
    pm = peft_model(model_dir, case["lora_targets"], adapter)
    pm.train()
    logits, loss = hf_forward(pm, tokens, targets)
    loss.backward()
    ours = medtune_outputs(work, model_dir, adapter, tokens, targets, "lora")
    expect_close("logits with the PEFT adapter vs PEFT", ours["logits"],
                 logits.detach().numpy(), TOL_LOGITS)
    expect_close("decoder logits with the adapter vs PEFT", ours["decoder_logits"],
                 logits.detach().numpy(), TOL_LOGITS)
    expect_close("loss with the adapter vs PEFT", ours["loss"], np.array([loss.item()]),
                 TOL_LOSS)
    worst, n = 0.0, 0
    for name, p in pm.named_parameters():
        if "lora_" not in name:
            continue
        key = "grad." + name.replace(".default", "")
        if key not in ours:
            fail(f"medtune wrote no gradient for {name}")
        want = p.grad.double().numpy()
        rel = np.linalg.norm(ours[key] - want) / max(np.linalg.norm(want), 1e-30)
        worst, n = max(worst, rel), n + 1
        if not rel <= TOL_GRAD:
            fail(f"{key}: relative difference {rel:.3g} > {TOL_GRAD}")
    print(f"LoRA gradients vs PEFT + autograd: {n} tensors, worst relative L2 {worst:.3g} "
          f"(tol {TOL_GRAD})")
    if n != 2 * len(case["lora_targets"]) * pm.config.num_hidden_layers:
        fail(f"{n} LoRA tensors compared")


def check_trained(work, model_dir, case, tokens, targets):
    shards = prep_sample(os.path.join(work, "shards"), model_dir)
    out = os.path.join(work, "run")
    conf = os.path.join(work, "train.json")
    import json
    with open(conf, "w") as f:
        json.dump({"model": model_dir, "data": {"train": shards},
                   "lora": {"r": 4, "alpha": 8, "dropout": 0.0,
                            "targets": case.get("train_targets", case["lora_targets"])},
                   "optim": {"lr": 0.02}, "batch": {"micro_batch": 2, "seq_len": 32},
                   "steps": 4, "save_every": 4, "threads": 2, "out_dir": out}, f)
    run(["train", conf])
    adapter = os.path.join(work, "exported")
    run(["export", out, adapter])
    written = json.load(open(os.path.join(adapter, "adapter_config.json")))["target_modules"]
    if sorted(written) != sorted(case["lora_targets"]):
        fail(f"exported target_modules {written}, expected {case['lora_targets']}")
    ours = medtune_outputs(work, model_dir, adapter, tokens, targets, "trained")
    base = medtune_outputs(work, model_dir, None, tokens, targets, "base2")
    effect = float(np.abs(ours["logits"] - base["logits"]).max())
    print(f"trained adapter moves the logits by {effect:.3g}")
    if not effect > 100 * TOL_LOGITS:
        fail("the trained adapter hardly changes the logits: the check would be vacuous")
    pm = peft.PeftModel.from_pretrained(load_hf(model_dir), adapter).eval()
    with torch.no_grad():
        logits, _ = hf_forward(pm, tokens, targets)
    expect_close("exported adapter in PEFT vs medtune", ours["logits"], logits.numpy(),
                 TOL_LOGITS)
    merged = os.path.join(work, "merged")
    run(["merge", model_dir, adapter, merged])
    with torch.no_grad():
        logits, _ = hf_forward(load_hf(merged), tokens, targets)
    expect_close("medtune merge loaded by transformers vs medtune base+adapter", logits.numpy(),
                 ours["logits"], TOL_LOGITS)
    check_gguf_adapter(work, out, adapter, case)


def check_gguf_adapter(work, run_dir, peft_dir, case):
    """`medtune export --format gguf`: llama.cpp's arch name and tensor names, A and B as PEFT's
    (qwen3 and gemma3 keep HF's Q/K row order: no permutation), alpha / r as PEFT's scale."""
    from gguf import GGUFReader
    from safetensors.numpy import load_file
    path = os.path.join(work, "adapter.gguf")
    run(["export", run_dir, path, "--format", "gguf"])
    r = GGUFReader(path)
    field = r.fields["general.architecture"]
    arch = bytes(field.parts[field.data[0]]).decode()
    if arch != case["gguf_arch"]:
        fail(f"adapter.gguf: general.architecture {arch!r}, expected {case['gguf_arch']!r}")
    alpha = float(r.fields["adapter.lora.alpha"].parts[-1][0])
    peft_w = load_file(os.path.join(peft_dir, "adapter_model.safetensors"))
    names = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
             "gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down"}
    got = {t.name: np.array(t.data) for t in r.tensors}
    worst = 0.0
    for key, want in peft_w.items():
        parts = key.split(".")
        layer, proj, ab = parts[4], parts[6], parts[7]
        name = f"blk.{layer}.{names[proj]}.weight.lora_{ab[-1].lower()}"
        if name not in got:
            fail(f"adapter.gguf has no {name}")
        worst = max(worst, float(np.abs(got[name].reshape(want.shape) - want).max()))
    print(f"adapter.gguf ({arch}, alpha {alpha}): {len(got)} tensors, max |diff| vs PEFT {worst:.3g}")
    if len(got) != len(peft_w) or worst != 0.0 or alpha != 8.0:
        fail("adapter.gguf differs from the PEFT adapter")


def check_gguf(work, model_dir, hf, case, tokens, targets):
    spec = case["gguf"]
    path = os.path.join(work, "model.gguf")
    write_gguf(path, hf.state_dict(), hf.config.to_dict(), spec,
               os.path.join(model_dir, "tokenizer.json"))
    with torch.no_grad():
        logits, _ = hf_forward(hf, tokens, targets)
    ours = medtune_outputs(work, path, None, tokens, targets, "gguf")
    expect_close(f"GGUF ({spec['arch']}) logits vs transformers on the HF directory",
                 ours["logits"], logits.numpy(), TOL_LOGITS)
    expect_close("GGUF decoder logits vs transformers", ours["decoder_logits"], logits.numpy(),
                 TOL_LOGITS)
    # A GGUF base merged with the trained adapter: transformers loads the directory medtune
    # writes (its config.json and HF-form weights) and gives medtune's base+adapter logits.
    adapter = os.path.join(work, "exported")
    merged = os.path.join(work, "merged_gguf")
    run(["merge", path, adapter, merged])
    want = medtune_outputs(work, model_dir, adapter, tokens, targets, "gguf_merge")["logits"]
    with torch.no_grad():
        logits, _ = hf_forward(load_hf(merged), tokens, targets)
    expect_close("GGUF base merged, loaded by transformers, vs medtune HF base+adapter",
                 logits.numpy(), want, TOL_LOGITS)


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in CASES:
        print(__doc__)
        sys.exit(2)
    name = sys.argv[1]
    case = CASES[name]
    global CHECKPOINT_DTYPE
    CHECKPOINT_DTYPE = getattr(torch, case.get("dtype", "float32"))
    print(f"{name}: transformers {transformers.__version__}, peft {peft.__version__}, "
          f"torch {torch.__version__}")
    work = work_dir("arch", name)
    model_dir = os.path.join(work, "model")
    hf, vocab = make_model(case, model_dir)
    tokens, targets = check_base(work, model_dir, hf, vocab)
    if case.get("text_only"):
        print("PASS")
        return
    check_lora(work, model_dir, case, tokens, targets)
    check_trained(work, model_dir, case, tokens, targets)
    if case.get("gguf"):
        check_gguf(work, model_dir, hf, case, tokens, targets)
    shutil.rmtree(os.path.join(work, "shards"), ignore_errors=True)
    print("PASS")


if __name__ == "__main__":
    main()
