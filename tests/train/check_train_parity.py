#!/usr/bin/env python3
"""Training parity: 20 optimizer steps of `medtune train` (fixed non-zero initial adapter,
dropout 0, no shuffle, grad_accum 2, warmup + cosine, clipping active) against the PyTorch twin
trained on the same windows with torch.optim.AdamW, the transformers cosine-with-warmup
schedule and clip_grad_norm_: every step's loss within 1e-4. Always on a random-weight GQA
model (head_dim != hidden/heads, odd sizes) with the quickstart sample as shards; also on
tinystories-656k with the PubMed sample when ../shared is there."""
import math
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "twin"))
sys.path.insert(0, os.path.dirname(__file__))
from train_lib import (fail, prep_pubmed, read_split_words, run, stream_windows,  # noqa
                    work_dir, write_json, write_peft_adapter, metrics)
from fresh_lib import fresh_model, prep_sample, shared_or_none  # noqa: E402
from llama import Twin, lora_init  # noqa: E402
from model_io import load_model  # noqa: E402

STEPS, MB, GA, T = 20, 2, 2, 64
LR, WARMUP, CLIP, WD = 2e-3, 4, 0.5, 0.01
R, ALPHA = 4, 8
TOL = 1e-4


def hf_cosine_with_warmup(step, warmup, total):
    """transformers.get_cosine_schedule_with_warmup's lr_lambda (num_cycles 0.5)."""
    if step < warmup:
        return float(step) / float(max(1, warmup))
    progress = float(step - warmup) / float(max(1, total - warmup))
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * 0.5 * 2.0 * progress)))


def check_parity(work, model, shards, lr=LR, clip=CLIP):
    cfg, weights = load_model(model)
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    lora = lora_init(cfg, R, targets, seed=7, b_std=0.05)
    adapter = write_peft_adapter(os.path.join(work, "init_adapter"), lora, r=R, lora_alpha=ALPHA,
                                 lora_dropout=0.0, target_modules=targets, bias="none",
                                 use_rslora=False, fan_in_fan_out=False)

    conf = os.path.join(work, "train.json")
    write_json(conf, {"model": model, "init_adapter": adapter, "data": {"train": shards},
                      "lora": {"r": R, "alpha": ALPHA, "dropout": 0.0, "targets": targets},
                      "optim": {"lr": lr, "weight_decay": WD, "grad_clip": clip},
                      "schedule": {"warmup_steps": WARMUP, "decay": "cosine"},
                      "batch": {"micro_batch": MB, "seq_len": T, "grad_accum": GA},
                      "steps": STEPS, "shuffle": False, "save_every": 0, "threads": 2,
                      "out_dir": os.path.join(work, "run")})
    run(["train", conf])
    got = [r for r in metrics(os.path.join(work, "run")) if "loss" in r]

    words, _ = read_split_words(shards, "train")
    windows = stream_windows(words, T)
    if len(windows) < STEPS * MB * GA:
        fail(f"only {len(windows)} windows")
    twin = Twin(cfg, weights, lora, ALPHA / R)
    params = list(lora.values())
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=WD)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: hf_cosine_with_warmup(s, WARMUP, STEPS))
    worst, clipped = 0.0, 0
    for step in range(STEPS):
        opt.zero_grad(set_to_none=True)
        micro = []
        for k in range(GA):
            rows = windows[(step * GA + k) * MB:(step * GA + k + 1) * MB]
            micro.append((torch.tensor([r[0] for r in rows]), torch.tensor([r[1] for r in rows])))
        n_targets = sum(int((tg >= 0).sum()) for _, tg in micro)
        total = 0.0
        for toks, tg in micro:
            pos = torch.arange(T).repeat(MB, 1)
            logits = twin.forward(toks, pos, torch.zeros(MB, T, dtype=torch.long))
            loss_sum = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), tg.reshape(-1), ignore_index=-1,
                reduction="sum")
            (loss_sum / n_targets).backward()
            total += loss_sum.item()
        norm = torch.nn.utils.clip_grad_norm_(params, clip).item()
        clipped += norm > clip
        opt.step()
        sched.step()
        ref = total / n_targets
        mine = got[step]
        d = abs(mine["loss"] - ref)
        worst = max(worst, d)
        print(f"step {step + 1:2d}  medtune {mine['loss']:.6f}  twin {ref:.6f}  |diff| {d:.2e}  "
              f"grad norm {mine['grad_norm']:.5f} vs {norm:.5f}  lr {mine['lr']:.6g}")
        if abs(mine["grad_norm"] - norm) > 1e-3 * max(norm, 1e-6):
            fail(f"step {step + 1}: grad norm {mine['grad_norm']} vs twin {norm}")
    if clipped == 0:
        fail("clipping never triggered: the test would not cover it")
    if len(got) != STEPS:
        fail(f"metrics.jsonl has {len(got)} step lines, expected {STEPS}")
    print(f"worst loss difference {worst:.3g} over {STEPS} steps (tol {TOL}); "
          f"clipping active on {clipped} steps")
    if not worst <= TOL:
        fail("losses differ from the PyTorch twin")


def main():
    torch.set_num_threads(2)
    work = work_dir("parity_random")
    model = fresh_model(os.path.join(work, "model"))
    print(f"random GQA model, quickstart sample: {model}")
    # Its gradients are smaller than tinystories': a lower clip keeps clipping active, a
    # higher lr makes the adapter move the loss within 20 steps.
    check_parity(work, model, prep_sample(os.path.join(work, "shards"), model), lr=1e-2,
                 clip=0.3)
    shared = shared_or_none()
    if shared:
        work = work_dir("parity")
        model = os.path.join(shared, "models/tinystories-656k")
        print(f"tinystories-656k, PubMed sample: {model}")
        check_parity(work, model, prep_pubmed(shared, os.path.join(work, "shards"), model))
    print("PASS")


if __name__ == "__main__":
    main()
