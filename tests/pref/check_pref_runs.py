#!/usr/bin/env python3
"""DPO/ORPO runs on a fresh clone (random-weight llama, the quickstart Q&A as preference pairs):
- the memory plan of a DPO micro-batch counts its 2 micro_batch rows;
- refusals, one line each: objective dpo/orpo on document shards, sft on pair shards,
  dpo.beta 0, orpo.beta < 0, label smoothing without sigmoid; eval --preference on document
  shards and eval --shards on pair shards;
- bit-exact resume: 30 DPO steps from an initial adapter (reference = that adapter) with LoRA
  dropout, shuffling, grad_accum 2 and evaluations, straight vs SIGTERM mid-run + --resume:
  every metrics.jsonl value but timings identical as text, final adapter byte-identical;
- the reference on resume: the same initial adapter at another path resumes, other weights
  are refused with one line;
- `medtune report` of that run draws TRL's reward, accuracy and log-prob curves (train and
  val) exactly as metrics.jsonl has them;
- 1 thread gives the 2-thread run bit for bit, and so does recompute: true;
- under mpirun -np 2 (when medtune has MPI and mpirun exists): the same run on 2 ranks with
  grad_accum 1 gives one process's metrics and adapter bytes."""
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "twin"))
sys.path.insert(0, os.path.join(HERE, "..", "train"))
sys.path.insert(0, os.path.join(HERE, "..", "mpi"))
import pref_lib as L  # noqa: E402
from fresh_lib import prep_sample  # noqa: E402
from testlib import expect_error, medtune_bin  # noqa: E402
from model_io import load_model  # noqa: E402
from train_lib import train_until_sigterm  # noqa: E402

STEPS = 30
TIMING = ("elapsed_s", "tok_per_s", "comm_ms", "comm_mb", "world_size")


def refusals(work, model, shards):
    docs = prep_sample(os.path.join(work, "docs"), model)
    expect_error(["train", L.train_config(work, "r1", model, docs, objective="dpo")], docs,
                 "not preference pairs", "dpo")
    expect_error(["train", L.train_config(work, "r2", model, docs, objective="orpo")], docs,
                 "orpo")
    expect_error(["train", L.train_config(work, "r3", model, shards)], shards,
                 "preference pairs", "dpo or orpo")
    expect_error(["train", L.train_config(work, "r4", model, shards, objective="dpo",
                                          dpo__beta=0)], "dpo.beta", "> 0")
    expect_error(["train", L.train_config(work, "r5", model, shards, objective="orpo",
                                          orpo__beta=-0.5)], "orpo.beta")
    expect_error(["eval", model, "--preference", docs, "--split", "train"], docs,
                 "not preference pairs")
    expect_error(["eval", model, "--shards", shards, "--split", "train"], shards,
                 "eval --preference")
    expect_error(["train", L.train_config(work, "r6", model, shards, objective="dpo",
                                          dpo__loss="ipo", dpo__label_smoothing=0.1)],
                 "dpo.label_smoothing")


def memory_plan(work, model, shards):
    """A DPO micro-batch of P pairs is 2 P rows (chosen, rejected): the memory plan's
    activations are those of an SFT plan of 2 P windows. Batches too large for the machine, so
    both runs stop at the plan, before any large allocation."""
    import re
    plan = re.compile(r"^medtune: memory plan: .* activations ([\d.]+) MB", re.M)
    got = {}
    for objective, data, mb in (("dpo", shards, 32768), ("sft", os.path.join(work, "docs"),
                                                          65536)):
        conf = L.train_config(work, f"plan_{objective}", model, data, objective=objective,
                              batch__micro_batch=mb, batch__seq_len=512)
        p = L.run(["train", conf], expect=1)
        m = plan.search(p.stderr)
        if not m or "MemAvailable" not in p.stderr:
            L.fail(f"{objective}: no memory plan and refusal in: {p.stderr[-1500:]}")
        got[objective] = float(m.group(1))
    print(f"memory plan activations: dpo 32768 pairs {got['dpo']} MB, sft 65536 windows "
          f"{got['sft']} MB")
    if got["dpo"] != got["sft"]:
        L.fail("the DPO memory plan does not count 2 rows per pair")


def config(work, name, model, shards, adapter, **over):
    settings = {"objective": "dpo", "init_adapter": adapter, "lora__dropout": 0.1,
                "lora__targets": ["q_proj", "v_proj"], "shuffle": True, "seed": 3,
                "eval_every": 7, "eval_batches": 2, "save_every": 5, "keep_last": 2,
                "steps": STEPS, "batch__grad_accum": 2}
    settings.update(over)
    return L.train_config(work, name, model, shards, **settings)


def lines(run_dir):
    """Each metrics line without timings, as text (the exact doubles)."""
    out = []
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            parts = [p for p in line.strip().strip("{}").split(", ")
                     if p.split(":")[0].strip('"') not in TIMING]
            out.append(", ".join(parts))
    return out


def same_run(a, b, label):
    la, lb = lines(a), lines(b)
    if la != lb:
        diff = [(x, y) for x, y in zip(la, lb) if x != y][:1]
        L.fail(f"{label}: metrics.jsonl differs: {diff or (len(la), len(lb))}")
    fa = open(os.path.join(a, "adapter", "adapter_model.safetensors"), "rb").read()
    fb = open(os.path.join(b, "adapter", "adapter_model.safetensors"), "rb").read()
    if fa != fb:
        L.fail(f"{label}: final adapters differ")
    if not any('"val_rewards/accuracies"' in x for x in la):
        L.fail(f"{label}: no val_rewards/accuracies in metrics.jsonl")
    print(f"{label}: {len(la)} metrics lines identical (losses, rewards, logps, val metrics), "
          f"final adapter byte-identical")


def resume(work, model, shards, adapter):
    straight = config(work, "straight", model, shards, adapter)
    L.run(["train", straight])
    term = config(work, "sigterm", model, shards, adapter)
    run_dir = os.path.join(work, "sigterm")
    stopped = train_until_sigterm(term, run_dir, 8, STEPS)
    L.run(["train", term, "--resume"])
    print(f"SIGTERM after step {stopped}, resumed")
    same_run(os.path.join(work, "straight"), run_dir, "SIGTERM + resume")
    # The report's preference charts, read back from the SVG (tests/report/report_lib.py).
    sys.path.insert(0, os.path.join(HERE, "..", "report"))
    import report_lib
    L.run(["report", run_dir])
    _, _, counts = report_lib.check_report(run_dir, STEPS)
    pref = {k: v for k, v in counts.items() if "/" in k}
    if len(pref) != 8:
        L.fail(f"report: preference series {sorted(pref)}, expected 8")
    print(f"report: {len(pref)} preference series match metrics.jsonl")


def reference_on_resume(work, model, shards, adapter, cfg):
    """The DPO reference of a run from an initial adapter is that adapter, read again on
    --resume: moved elsewhere it resumes, with other weights it is refused."""
    conf = config(work, "ref", model, shards, adapter, steps=2, eval_every=0)
    L.run(["train", conf])
    moved = os.path.join(work, "init_adapter_moved")
    shutil.copytree(adapter, moved)
    L.run(["train", config(work, "ref", model, shards, moved, steps=3, eval_every=0),
           "--resume"])
    other, _ = L.initial_adapter(os.path.join(work, "init_adapter_other"), cfg, 4,
                                 ["q_proj", "v_proj"], seed=10)
    expect_error(["train", config(work, "ref", model, shards, other, steps=4, eval_every=0),
                  "--resume"], "cannot resume", "other weights", "reference.sha256", only=False)


def threads(work, model, shards, adapter):
    """The thread count changes no result (docs/design.md): 1 thread = 2 threads, bit for bit."""
    L.run(["train", config(work, "one_thread", model, shards, adapter, threads=1)])
    same_run(os.path.join(work, "straight"), os.path.join(work, "one_thread"),
             "1 thread vs 2 threads")


def recompute(work, model, shards, adapter):
    """recompute: true changes no bit: backward runs each layer again after the reference
    pass and the policy's log-probabilities used the same plan."""
    L.run(["train", config(work, "recompute", model, shards, adapter, recompute=True)])
    same_run(os.path.join(work, "straight"), os.path.join(work, "recompute"),
             "recompute vs without")


def mpi(work, model, shards, adapter):
    if not shutil.which("mpirun"):
        print("note: mpirun is absent; the 2-rank case is not run")
        return
    from mpi_lib import lsan_env, mpirun_args
    probe = subprocess.run(mpirun_args(2) + [medtune_bin(), "train", "/nonexistent.json"],
                           capture_output=True, text=True, env=lsan_env(), timeout=120)
    if "built without MPI" in probe.stderr:
        print("note: medtune was built without MPI; the 2-rank case is not run")
        return
    two = config(work, "two", model, shards, adapter, batch__grad_accum=1)
    p = subprocess.run(mpirun_args(2) + [medtune_bin(), "train", two], capture_output=True,
                       text=True, env=lsan_env(), timeout=900)
    if p.returncode != 0:
        L.fail(f"2 ranks: exit {p.returncode}: {p.stderr[-2000:]}")
    same_run(os.path.join(work, "straight"), os.path.join(work, "two"),
             "2 ranks x grad_accum 1 vs 1 process x grad_accum 2")


def main():
    work = L.work_dir("runs")
    model, shards = L.fresh_pairs(work, val_fraction=0.2)
    refusals(work, model, shards)
    memory_plan(work, model, shards)
    cfg, _ = load_model(model)
    adapter, _ = L.initial_adapter(os.path.join(work, "init_adapter"), cfg, 4,
                                   ["q_proj", "v_proj"], seed=9)
    resume(work, model, shards, adapter)
    reference_on_resume(work, model, shards, adapter, cfg)
    threads(work, model, shards, adapter)
    recompute(work, model, shards, adapter)
    mpi(work, model, shards, adapter)
    print("PASS")


if __name__ == "__main__":
    main()
