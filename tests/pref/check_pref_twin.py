#!/usr/bin/env python3
"""DPO and ORPO training against the PyTorch twin (fresh clone: random-weight llama, the
quickstart Q&A as preference pairs): for sigmoid DPO (also with label smoothing), IPO, hinge
and ORPO, every step's loss and metrics over 3 AdamW steps (1e-5 abs) and every LoRA gradient
of the first step (1e-4 relative per tensor, read back from a first AdamW step with lr 1 and
eps 0.01, which is -g / (|g| + 0.01)) equal the twin's, with pref_ref.py's formulas and the
reference = the initial adapter. Also: a fresh adapter (B = 0) gives sigmoid DPO loss exactly
ln 2 and rewards exactly 0 at step 1, and grad_accum A with P pairs equals one micro-batch of
A P pairs (1e-6 relative, loss, metrics and gradients), and `medtune eval --preference` gives
the twin's log-probabilities and, with an adapter, its rewards against the base."""
import math
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "twin"))
sys.path.insert(0, os.path.join(HERE, "..", "train"))
import pref_lib as L  # noqa: E402
import pref_ref as R  # noqa: E402
from llama import Twin  # noqa: E402
from model_io import load_model  # noqa: E402

T, STEPS, LR = 48, 3, 1e-2
RANK, ALPHA = 4, 8
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
TOL_METRIC, TOL_GRAD = 1e-5, 1e-4
# The first AdamW step with lr 1 moves a parameter by -g / (|g| + eps): with eps near the
# gradients' size the move is large next to the float32 spacing of the parameter, so g reads
# back to ~1e-7 relative.
GRAD_EPS = 0.01


def twin_step_loss(twin, ref_twin, batch, case):
    """The step's loss (a tensor, for backward) and metrics on the step's pairs as one batch."""
    toks, tgts, resp = (torch.tensor(x) for x in L.rows(batch, T, case["pad"]))
    R2 = toks.shape[0]
    pos, docs = torch.arange(T).repeat(R2, 1), torch.zeros(R2, T, dtype=torch.long)
    lp = R.token_logps(twin.forward(toks, pos, docs), tgts)
    rmask = resp.float()
    sums, n = (lp * rmask).sum(1), rmask.sum(1)
    if case["objective"] == "orpo":
        P = R2 // 2
        avg = sums / n.clamp(min=1)
        nll_mask = (tgts[:P] >= 0).float()
        nll = -(lp[:P] * nll_mask).sum() / nll_mask.sum()
        per_pair, ratio, log_odds = R.orpo_terms(avg, case["beta"])
        loss = nll + per_pair.mean()
        return loss, R.orpo_metrics(avg.detach(), nll.detach(), case["beta"], ratio, log_odds)
    with torch.no_grad():
        ref = (R.token_logps(ref_twin.forward(toks, pos, docs), tgts) * rmask).sum(1)
    per_pair = R.dpo_losses(sums, ref, n, case["beta"], case.get("loss", "sigmoid"),
                            case.get("label_smoothing", 0.0))
    return per_pair.mean(), R.dpo_metrics(sums.detach(), ref, case["beta"])


def medtune_run(work, name, model, shards, adapter, case, **over):
    key = "orpo__beta" if case["objective"] == "orpo" else "dpo__beta"
    extra = {"objective": case["objective"], key: case["beta"],
             "batch__micro_batch": case["P"], "batch__grad_accum": case["GA"],
             "batch__seq_len": T}
    if adapter:
        extra["init_adapter"] = adapter
    if case["objective"] == "dpo":
        extra["dpo__loss"] = case.get("loss", "sigmoid")
        extra["dpo__label_smoothing"] = case.get("label_smoothing", 0.0)
    extra.update(over)
    cfg = L.train_config(work, name, model, shards, **extra)
    L.run(["train", cfg])
    return os.path.join(work, name)


def check_case(work, model, shards, adapter, lora0, cfg, weights, case, pairs):
    name = case["name"]
    run = medtune_run(work, name, model, shards, adapter, case, steps=STEPS)
    got = [m for m in L.metrics(run) if "loss" in m]
    # The twin runs in float64: the reference is then exact to far below the tolerance, and
    # what is measured is medtune's own float32 error.
    lora = {k: torch.nn.Parameter(v.detach().double().clone()) for k, v in lora0.items()}
    twin = Twin(cfg, weights, lora, ALPHA / RANK, dtype=torch.float64)
    ref_twin = Twin(cfg, weights, {k: v.detach().double().clone() for k, v in lora0.items()},
                    ALPHA / RANK, dtype=torch.float64)
    opt = torch.optim.AdamW(list(lora.values()), lr=LR, betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=0.0)
    per_step = case["P"] * case["GA"]
    worst, first_grads = 0.0, None
    for step in range(STEPS):
        opt.zero_grad(set_to_none=True)
        loss, mets = twin_step_loss(twin, ref_twin, pairs[step * per_step:(step + 1) * per_step],
                                    case)
        loss.backward()
        if step == 0:
            first_grads = {k: v.grad.detach().double().clone() for k, v in lora.items()}
        opt.step()
        mine = got[step]
        diffs = {"loss": abs(mine["loss"] - loss.item())}
        diffs.update({k: abs(mine[k] - v) for k, v in mets.items()})
        key = max(diffs, key=diffs.get)
        worst = max(worst, diffs[key])
        print(f"  step {step + 1}: loss {mine['loss']:.7f} twin {loss.item():.7f}; worst metric "
              f"difference {diffs[key]:.2e} ({key})")
        if diffs[key] > TOL_METRIC:
            L.fail(f"{name}: step {step + 1}: {key} {mine.get(key)} vs twin "
                   f"{mets.get(key, loss.item())}")
        missing = set(mets) - set(mine)
        if missing:
            L.fail(f"{name}: metrics.jsonl lacks {sorted(missing)}")
    # Gradients of step 1, from the first AdamW update with lr 1 and eps 1.
    grun = medtune_run(work, name + "_grad", model, shards, adapter, case, steps=1,
                       optim__lr=1.0, optim__eps=GRAD_EPS)
    g = L.grads_from_adam_step(lora0, L.adapter_tensors(os.path.join(grun, "adapter")),
                             eps=GRAD_EPS)
    rel = max((g[k] - first_grads[k]).norm().item() / first_grads[k].norm().item()
              for k in first_grads)
    print(f"{name}: worst metric difference {worst:.2e} (tol {TOL_METRIC}), worst gradient "
          f"relative difference {rel:.2e} over {len(first_grads)} tensors (tol {TOL_GRAD})")
    if not rel <= TOL_GRAD:
        L.fail(f"{name}: LoRA gradients differ from the twin's")


def check_eval(model, shards, adapter, lora0, cfg, weights, pairs, pad):
    """medtune eval --preference (3 pairs per pass: a short last chunk) against the twin:
    logps of all usable train pairs, and with the adapter the rewards against the base."""
    import json
    base = Twin(cfg, weights, {}, ALPHA / RANK, dtype=torch.float64)
    tuned = Twin(cfg, weights, {k: v.double() for k, v in lora0.items()}, ALPHA / RANK,
                 dtype=torch.float64)
    toks, tgts, resp = (torch.tensor(x) for x in L.rows(pairs, T, pad))
    pos, docs = torch.arange(T).repeat(toks.shape[0], 1), torch.zeros_like(toks)
    with torch.no_grad():
        sums = {name: (R.token_logps(tw.forward(toks, pos, docs), tgts) * resp).sum(1)
                for name, tw in (("base", base), ("tuned", tuned))}
    want = R.dpo_metrics(sums["tuned"], sums["base"], 0.2)
    want["loss"] = R.dpo_losses(sums["tuned"], sums["base"], None, 0.2).mean().item()
    args = ["eval", model, "--preference", shards, "--split", "train", "--seq-len", str(T),
            "--batch", "3", "--json"]
    got = json.loads(L.run(args + ["--adapter", adapter, "--beta", "0.2"]).stdout)
    plain = json.loads(L.run(args).stdout)
    worst = max(abs(got[k] - v) for k, v in want.items())
    if got["pairs"] != len(pairs) or "rewards/chosen" in plain or \
            abs(plain["logps/chosen"] - R.dpo_metrics(sums["base"], sums["base"], 1)[
                "logps/chosen"]) > TOL_METRIC:
        L.fail(f"eval --preference without adapter: {plain}")
    print(f"eval --preference: {got['pairs']} pairs, reward accuracy {got['rewards/accuracies']}, "
          f"worst difference from the twin {worst:.2e} (tol {TOL_METRIC})")
    if not worst <= TOL_METRIC:
        L.fail(f"eval --preference: {got} vs twin {want}")
    text = L.run(args[:-1]).stdout
    if "rewards need an adapter" not in text:
        L.fail(f"eval --preference without --adapter must say rewards need one:\n{text}")


def check_ln2(work, model, shards):
    run = medtune_run(work, "fresh_adapter", model, shards, None,
                      {"objective": "dpo", "beta": 0.1, "P": 2, "GA": 1}, steps=1)
    m = [m for m in L.metrics(run) if "loss" in m][0]
    print(f"fresh adapter: step 1 loss {m['loss']!r} (ln 2 = {math.log(2)!r}), rewards "
          f"{m['rewards/chosen']!r} {m['rewards/rejected']!r} {m['rewards/margins']!r}")
    if m["loss"] != math.log(2) or m["rewards/chosen"] != 0 or m["rewards/rejected"] != 0 \
            or m["rewards/margins"] != 0:
        L.fail("a fresh adapter (B = 0) must give exactly ln 2 and zero rewards")


def check_accumulation(work, model, shards, adapter, lora0, objective):
    """P x A pairs per step in three splits: the same first-step loss, metrics and gradients.
    (Later steps are not compared at 1e-6: AdamW divides by sqrt(v), which magnifies the
    last-bit differences of summing the same gradient in another order.)"""
    base = {"objective": objective, "beta": 0.3}
    runs = []
    for P, GA in ((4, 1), (2, 2), (1, 4)):
        case = dict(base, P=P, GA=GA)
        tag = f"{objective}_accum_{P}x{GA}"
        ms = [m for m in L.metrics(medtune_run(work, tag, model, shards, adapter, case,
                                               steps=1)) if "loss" in m]
        grun = medtune_run(work, tag + "_grad", model, shards, adapter, case, steps=1,
                           optim__lr=1.0, optim__eps=GRAD_EPS)
        g = L.grads_from_adam_step(lora0, L.adapter_tensors(os.path.join(grun, "adapter")),
                             eps=GRAD_EPS)
        runs.append(((P, GA), ms, g))
    (_, m0, g0) = runs[0]
    worst_m = worst_g = worst_t = 0.0
    worst_key = None
    for split, ms, g in runs[1:]:
        for a, b in zip(m0, ms):
            for k, v in a.items():
                if k in ("loss", "grad_norm") or "/" in k or k in ("nll_loss", "log_odds_ratio",
                                                                   "log_odds_chosen"):
                    # Relative to the value, or to 1 for values below 1: a metric near zero
                    # (a margin, a log-odds) is a difference of fp32 sums of order 1, whose
                    # rounding does not shrink with it.
                    d = abs(b[k] - v) / max(abs(v), 1.0)
                    if d > worst_m:
                        worst_m, worst_key = d, f"{k} {v!r} vs {b[k]!r} at {split[0]}x{split[1]}"
        # Relative to the whole gradient (per tensor, float32 summation order alone gives up to
        # ~1e-6 on the smallest tensors; printed).
        diff = sum(((g[k] - g0[k]) ** 2).sum().item() for k in g0) ** 0.5
        worst_g = max(worst_g, diff / sum((g0[k] ** 2).sum().item() for k in g0) ** 0.5)
        worst_t = max(worst_t, max((g[k] - g0[k]).norm().item() / g0[k].norm().item()
                                   for k in g0))
    print(f"{objective}: 4x1, 2x2, 1x4 pairs x grad_accum: worst relative difference of the "
          f"first step's loss and metrics {worst_m:.2e} ({worst_key}), of its gradient {worst_g:.2e} "
          f"(tol 1e-6; worst single tensor {worst_t:.2e})")
    if not (worst_m <= 1e-6 and worst_g <= 1e-6):
        L.fail(f"{objective}: gradient accumulation differs from the larger batch")


def main():
    torch.set_num_threads(2)
    work = L.work_dir("twin")
    model, shards, pairs, pad = L.fresh_usable_pairs(work, T)
    cfg, weights = load_model(model)
    adapter, lora0 = L.initial_adapter(os.path.join(work, "init_adapter"), cfg, RANK, TARGETS,
                                       seed=5, alpha=ALPHA)
    print(f"{len(pairs)} usable pairs of seq_len {T}; model {model}")
    check_ln2(work, model, shards)
    check_eval(model, shards, adapter, lora0, cfg, weights, pairs, pad)
    cases = [dict(name="dpo_sigmoid", objective="dpo", beta=0.5),
             dict(name="dpo_cdpo", objective="dpo", beta=0.5, label_smoothing=0.1),
             dict(name="dpo_ipo", objective="dpo", beta=0.5, loss="ipo"),
             dict(name="dpo_hinge", objective="dpo", beta=0.5, loss="hinge"),
             dict(name="orpo", objective="orpo", beta=0.5)]
    for case in cases:
        case.update(P=2, GA=2, pad=pad)
        check_case(work, model, shards, adapter, lora0, cfg, weights, case, pairs)
    check_accumulation(work, model, shards, adapter, lora0, "dpo")
    check_accumulation(work, model, shards, adapter, lora0, "orpo")
    print("PASS")


if __name__ == "__main__":
    main()
