#!/usr/bin/env python3
"""`medtune eval --preference --adapter A --ref-adapter B` against the float64 PyTorch twin on a
fresh clone (random-weight llama, the quickstart Q&A as pairs): the policy is the base + A, the
reference the base + B (a DPO run from init_adapter B), and every reported quantity (log-probs
of both models, rewards, margins, accuracy, sigmoid loss, the chosen answers' loss per token)
equals the twin's within 1e-5. With --ref-adapter equal to --adapter the rewards, margins and
accuracy are exactly 0. Refusals: --ref-adapter without --adapter or without --preference
(usage, exit 2), a reference adapter of another rank (one error line, exit 1)."""
import json
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
from testlib import expect_error  # noqa: E402

T, BETA, TOL = 48, 0.2, 1e-5
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def adapter(work, name, cfg, rank, seed):
    path, lora = L.initial_adapter(os.path.join(work, name), cfg, rank, TARGETS, seed)
    return path, {k: v.double() for k, v in lora.items()}


def twin_sums(cfg, weights, lora, pairs, pad):
    """Summed response log-probs [2P] (chosen rows, then rejected) and response tokens [2P]."""
    twin = Twin(cfg, weights, lora, 2.0, dtype=torch.float64)  # alpha / r = 2
    toks, tgts, resp = (torch.tensor(x) for x in L.rows(pairs, T, pad))
    pos, docs = torch.arange(T).repeat(toks.shape[0], 1), torch.zeros_like(toks)
    with torch.no_grad():
        lp = R.token_logps(twin.forward(toks, pos, docs), tgts)
    return (lp * resp).sum(1), resp.sum(1).double()


def main():
    torch.set_num_threads(2)
    work = L.work_dir("eval")
    model, shards, pairs, pad = L.fresh_usable_pairs(work, T)
    cfg, weights = load_model(model)
    pol_dir, pol = adapter(work, "policy", cfg, 4, seed=5)
    ref_dir, ref = adapter(work, "reference", cfg, 4, seed=11)
    other_dir, _ = adapter(work, "rank8", cfg, 8, seed=3)
    P = len(pairs)

    pol_sums, n = twin_sums(cfg, weights, pol, pairs, pad)
    ref_sums, _ = twin_sums(cfg, weights, ref, pairs, pad)
    want = R.dpo_metrics(pol_sums, ref_sums, BETA)
    want["loss"] = R.dpo_losses(pol_sums, ref_sums, None, BETA).mean().item()
    want["ref_logps/chosen"] = ref_sums[:P].mean().item()
    want["ref_logps/rejected"] = ref_sums[P:].mean().item()
    want["nll/chosen"] = (-pol_sums[:P].sum() / n[:P].sum()).item()
    want["ref_nll/chosen"] = (-ref_sums[:P].sum() / n[:P].sum()).item()

    args = ["eval", model, "--preference", shards, "--split", "train", "--seq-len", str(T),
            "--batch", "3", "--beta", str(BETA), "--json", "--adapter", pol_dir]
    got = json.loads(L.run(args + ["--ref-adapter", ref_dir]).stdout)
    worst = max(abs(got[k] - v) for k, v in want.items())
    print(f"eval --ref-adapter: {got['pairs']} pairs, reward accuracy "
          f"{got['rewards/accuracies']}, margins {got['rewards/margins']:.4f}; worst difference "
          f"from the twin {worst:.2e} (tol {TOL})")
    if got["pairs"] != P or got["tokens/chosen"] != int(n[:P].sum()) or not worst <= TOL:
        L.fail(f"eval --ref-adapter: {got} vs twin {want} ({P} pairs, "
               f"{int(n[:P].sum())} chosen tokens)")
    # The reference must be B, not the base: the base's rewards differ by far more than TOL.
    base = json.loads(L.run(args).stdout)
    if abs(base["rewards/margins"] - got["rewards/margins"]) < 100 * TOL:
        L.fail("--ref-adapter did not change the reference")

    same = json.loads(L.run(args + ["--ref-adapter", pol_dir]).stdout)
    zero = {k: same[k] for k in ("rewards/chosen", "rewards/rejected", "rewards/margins",
                                 "rewards/accuracies")}
    print(f"--ref-adapter = --adapter: {zero}, loss {same['loss']!r} (ln 2 = {math.log(2)!r})")
    if any(v != 0 for v in zero.values()) or same["logps/chosen"] != same["ref_logps/chosen"]:
        L.fail(f"--ref-adapter equal to --adapter must give exactly zero rewards: {same}")

    text = L.run(args[:-3] + ["--adapter", pol_dir, "--ref-adapter", ref_dir]).stdout
    if f"reference {ref_dir}" not in text:
        L.fail(f"the text report must name the reference adapter:\n{text}")

    for bad in (args[:-2] + ["--ref-adapter", ref_dir],
                ["eval", model, "--shards", shards, "--adapter", pol_dir, "--ref-adapter",
                 ref_dir]):
        p = L.run(bad, expect=2)
        if "--ref-adapter" not in p.stderr:
            L.fail(f"usage error must name --ref-adapter: {p.stderr}")
    expect_error(args + ["--ref-adapter", other_dir], other_dir, "rank 8")
    print("PASS")


if __name__ == "__main__":
    main()
