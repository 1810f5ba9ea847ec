#!/usr/bin/env python3
"""DPO and ORPO against TRL 1.16 itself (the oracle venv: TRL, PEFT, transformers): on a
random-weight llama saved by transformers and an initial PEFT adapter, medtune trains 3 steps
on the sample pairs and TRL's own loss code (DPOTrainer.compute_loss; ORPOTrainer from
trl.experimental) trains the PEFT model on the same token ids with torch's AdamW. Every step's
loss and TRL's metrics agree to 1e-5 abs, every LoRA gradient of the first step to 1e-4
relative per tensor (medtune's read back from a first AdamW step with lr 1, eps 0.01), for
sigmoid DPO, conservative DPO (label smoothing, TRL's aot_unpaired with one pair per
micro-batch), IPO, hinge and ORPO. The reference of DPO with an initial adapter is that adapter
(TRL's "ref" copy). Also checks pref_ref.py's formulas (check_pref_twin.py's reference) against
TRL's on the same model (1e-5: TRL sums float32 log-probabilities). Skips without the oracle venv."""
import json
import os
import subprocess
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "twin"))
sys.path.insert(0, os.path.join(HERE, "..", "train"))
import pref_lib as L  # noqa: E402
from testlib import env, skip  # noqa: E402
from model_io import load_model  # noqa: E402

T, STEPS, LR, GRAD_EPS = 32, 3, 1e-2, 0.01
RANK, ALPHA = 4, 8
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def oracle_python():
    venv = env("MEDTUNE_ORACLE_VENV", os.path.join(env("MEDTUNE_CACHE", ""), "venv-oracle"))
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        skip(f"the oracle venv with TRL is absent ({py}; set MEDTUNE_ORACLE_VENV)")
    return py


def medtune_run(work, name, model, shards, adapter, case, **over):
    key = "orpo__beta" if case["objective"] == "orpo" else "dpo__beta"
    extra = {"objective": case["objective"], key: case["beta"], "init_adapter": adapter,
             "batch__micro_batch": case["P"], "batch__grad_accum": case["GA"],
             "batch__seq_len": T, "optim__lr": LR}
    if case["objective"] == "dpo":
        extra["dpo__loss"] = case.get("loss", "sigmoid")
        extra["dpo__label_smoothing"] = case.get("label_smoothing", 0.0)
    extra.update(over)
    L.run(["train", L.train_config(work, name, model, shards, **extra)])
    return os.path.join(work, name)


def check_case(py, work, model, shards, adapter, lora0, pairs, pad, case):
    name, P, GA = case["name"], case["P"], case["GA"]
    got = [m for m in L.metrics(medtune_run(work, name, model, shards, adapter, case,
                                            steps=STEPS)) if "loss" in m]
    grun = medtune_run(work, name + "_grad", model, shards, adapter, case, steps=1,
                       optim__lr=1.0, optim__eps=GRAD_EPS)
    g = L.grads_from_adam_step(lora0, L.adapter_tensors(os.path.join(grun, "adapter")),
                               eps=GRAD_EPS)
    steps = [[pairs[(s * GA + k) * P:(s * GA + k + 1) * P] for k in range(GA)]
             for s in range(STEPS)]
    spec = {"model": model, "adapter": adapter, "T": T, "pad": pad, "lr": LR, "case": case,
            "steps": steps}
    p = subprocess.run([py, os.path.join(HERE, "pref_trl_oracle.py")], input=json.dumps(spec),
                       capture_output=True, text=True)
    if p.returncode != 0:
        L.fail(f"{name}: the TRL oracle failed:\n{p.stderr[-3000:]}")
    trl = json.loads(p.stdout)
    worst = 0.0
    for s, (mine, ref) in enumerate(zip(got, trl["steps"])):
        for k, v in ref.items():
            if k not in mine:
                L.fail(f"{name}: metrics.jsonl lacks TRL's {k}")
            d = abs(mine[k] - v)
            worst = max(worst, d)
            if d > 1e-5:
                L.fail(f"{name}: step {s + 1}: {k} {mine[k]} vs TRL {v}")
        print(f"  step {s + 1}: loss {mine['loss']:.7f} TRL {ref['loss']:.7f}")
    rel = 0.0
    for k, v in trl["grads"].items():
        ref = torch.tensor(v, dtype=torch.float64)
        mine = g[k].flatten()
        rel = max(rel, (mine - ref).norm().item() / ref.norm().item())
    print(f"{name}: worst loss/metric difference {worst:.2e} (tol 1e-5), worst gradient relative "
          f"difference {rel:.2e} over {len(trl['grads'])} tensors (tol 1e-4); pref_ref vs TRL "
          f"{trl['formula_diff']:.2e}")
    if len(trl["grads"]) != len(g) or not rel <= 1e-4:
        L.fail(f"{name}: LoRA gradients differ from TRL's")
    if not trl["formula_diff"] <= 1e-5:
        L.fail(f"{name}: pref_ref.py's formulas differ from TRL's")


def main():
    py = oracle_python()
    torch.set_num_threads(2)
    work = L.work_dir("trl")
    model, shards, pairs, pad = L.fresh_usable_pairs(work, T)
    cfg, _ = load_model(model)
    adapter, lora0 = L.initial_adapter(os.path.join(work, "init_adapter"), cfg, RANK, TARGETS,
                                       seed=5, alpha=ALPHA)
    cases = [dict(name="dpo_sigmoid", objective="dpo", beta=0.5, P=2, GA=2),
             dict(name="dpo_cdpo", objective="dpo", beta=0.5, label_smoothing=0.1, P=1, GA=2),
             dict(name="dpo_ipo", objective="dpo", beta=0.5, loss="ipo", P=2, GA=2),
             dict(name="dpo_hinge", objective="dpo", beta=0.5, loss="hinge", P=2, GA=2),
             dict(name="orpo", objective="orpo", beta=0.5, P=2, GA=1)]
    for case in cases:
        check_case(py, work, model, shards, adapter, lora0, pairs, pad, case)
    print("PASS")


if __name__ == "__main__":
    main()
