#!/usr/bin/env python3
"""recompute and the memory plan, end to end on a random-weight GQA model (fresh clone):

- a run with `recompute: true` logs the same losses (as text: the same doubles) and writes a
  byte-identical adapter as the same run without it, with document attention, dropout and
  gradient accumulation;
- a recompute run stopped by SIGTERM and resumed with `--set recompute=false` (the key is free
  on resume) ends identical to the straight run too;
- every run prints its memory plan before step 1, and the activations it shows shrink with
  recompute;
- a batch whose plan exceeds MemAvailable (/proc/meminfo) is refused before any large
  allocation, with one line that names the amount and the setting that reduces it, exit 1.
"""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from train_lib import (compare, fail, medtune, run, train_until_sigterm,  # noqa: E402
                       work_dir, write_json)
from fresh_lib import fresh_model, prep_sample  # noqa: E402

STEPS = 16
PLAN = re.compile(r"^medtune: memory plan: weights [\d.]+ MB, adapter [\d.]+ MB, optimizer "
                  r"[\d.]+ MB, activations ([\d.]+) MB, buffers [\d.]+ MB: ([\d.]+) MB$", re.M)


def config(work, name, model, shards, recompute, **batch):
    path = os.path.join(work, name + ".json")
    b = {"micro_batch": 2, "seq_len": 64, "grad_accum": 2}
    b.update(batch)
    write_json(path, {"model": model, "data": {"train": shards},
                      "lora": {"r": 4, "alpha": 8, "dropout": 0.1},
                      "optim": {"lr": 1e-3}, "batch": b, "steps": STEPS, "seed": 5,
                      "threads": 2, "eval_every": 8, "eval_batches": 2, "save_every": 4,
                      "doc_attention": "document", "recompute": recompute,
                      "out_dir": os.path.join(work, name)})
    return path


def plan_mb(stderr, label):
    m = PLAN.search(stderr)
    if not m:
        fail(f"{label}: no memory plan line before step 1 in: {stderr[:1000]}")
    return float(m.group(1))


def main():
    work = work_dir("recompute_random")
    model = fresh_model(os.path.join(work, "model"))
    shards = prep_sample(os.path.join(work, "shards"), model)

    err_off = run(["train", config(work, "off", model, shards, False)]).stderr
    err_on = run(["train", config(work, "on", model, shards, True)]).stderr
    compare(os.path.join(work, "off"), os.path.join(work, "on"), "recompute on vs off")
    act_off, act_on = plan_mb(err_off, "recompute off"), plan_mb(err_on, "recompute on")
    print(f"memory plan: activations {act_off} MB without recompute, {act_on} MB with")
    if not act_on < act_off:
        fail("the plan's activations do not shrink with recompute")

    # Stopped with recompute, resumed without it.
    conf = config(work, "switch", model, shards, True)
    stopped = train_until_sigterm(conf, os.path.join(work, "switch"), 6, STEPS)
    run(["train", conf, "--resume", "--set", "recompute=false"])
    compare(os.path.join(work, "off"), os.path.join(work, "switch"),
            f"recompute until step {stopped}, then resumed without")

    # A plan larger than the machine: refused before the allocations, one line, exit 1.
    with open("/proc/meminfo") as f:
        avail = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    for recompute, setting in ((False, "recompute: true"), (True, "batch.micro_batch")):
        conf = config(work, f"huge_{recompute}", model, shards, recompute, micro_batch=65536,
                      seq_len=512)
        p = subprocess.run([medtune(), "train", conf], capture_output=True, text=True)
        lines = [l for l in p.stderr.splitlines() if l.startswith("medtune: error:")]
        m = PLAN.search(p.stderr)
        if not m or float(m.group(2)) * 1e6 < avail:
            fail(f"the huge batch's plan ({m and m.group(2)} MB) fits MemAvailable "
                 f"({avail / 1e6:.0f} MB): the test needs a larger batch")
        if p.returncode != 1 or len(lines) != 1 or "MemAvailable" not in lines[0] \
                or setting not in lines[0] or "MB more memory" not in lines[0]:
            fail(f"recompute {recompute}: expected one refusal naming {setting!r}, got exit "
                 f"{p.returncode}: {p.stderr[-1500:]}")
        print(f"refused (recompute {recompute}): {lines[0]}")
    print("PASS")


if __name__ == "__main__":
    main()
