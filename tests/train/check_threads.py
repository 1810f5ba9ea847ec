#!/usr/bin/env python3
"""Results do not depend on the thread count: the same run with 1, 2 and 3 OpenMP threads
gives identical metrics.jsonl losses and val losses (as text, 17 significant digits) and a
byte-identical final adapter; and a run started with 2 threads, stopped by SIGTERM and
resumed with --set threads=1 equals the uninterrupted run byte for byte. The checkpoint
records the effective thread count of the session that wrote it (medtune info). Always on a
random-weight GQA model with the quickstart sample; also on tinystories-656k with the PubMed
sample when ../shared is there."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_lib import (compare, fail, fresh_then_shared, medtune, run,  # noqa: E402
                       train_until_sigterm, write_json)

STEPS = 24


def config(work, name, model, shards, replay, threads):
    path = os.path.join(work, name + ".json")
    write_json(path, {"model": model, "data": {"train": shards, "replay": replay,
                                                "replay_ratio": 0.25},
                      "lora": {"r": 4, "alpha": 8, "dropout": 0.1},
                      "optim": {"lr": 1e-3, "weight_decay": 0.01},
                      "schedule": {"warmup_steps": 4, "decay": "cosine"},
                      "batch": {"micro_batch": 4, "seq_len": 96, "grad_accum": 2},
                      "steps": STEPS, "seed": 11, "threads": threads,
                      "eval_every": 8, "eval_batches": 3, "save_every": 4,
                      "out_dir": os.path.join(work, name)})
    return path


def info_threads(run_dir):
    p = subprocess.run([medtune(), "info", run_dir, "--json"], capture_output=True, text=True)
    if p.returncode != 0:
        fail(f"medtune info {run_dir}: {p.stderr}")
    return json.loads(p.stdout).get("threads")


def check_threads(work, model, shards, replay):
    runs = {}
    for threads in (1, 2, 3):
        name = f"t{threads}"
        run(["train", config(work, name, model, shards, replay, threads)])
        runs[threads] = os.path.join(work, name)
        if info_threads(runs[threads]) != threads:
            fail(f"threads {threads}: the checkpoint records {info_threads(runs[threads])}")
    compare(runs[1], runs[2], "threads 1 vs 2")
    compare(runs[1], runs[3], "threads 1 vs 3")

    # Started with 2 threads, stopped by SIGTERM, resumed with 1.
    conf = config(work, "moved", model, shards, replay, 2)
    run_dir = os.path.join(work, "moved")
    stopped = train_until_sigterm(conf, run_dir, 7, STEPS)
    if info_threads(run_dir) != 2:
        fail(f"the checkpoint written at the stop records {info_threads(run_dir)} threads, not 2")
    run(["train", conf, "--resume", "--set", "threads=1"])
    print(f"2 threads stopped after step {stopped}, resumed with 1 thread")
    if info_threads(run_dir) != 1:
        fail(f"the last checkpoint records {info_threads(run_dir)} threads, not 1")
    compare(runs[1], run_dir, "2 threads, SIGTERM, resumed with 1")


def main():
    fresh_then_shared("threads", check_threads)


if __name__ == "__main__":
    main()
