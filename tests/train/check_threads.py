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
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_lib import (compare, fail, medtune, prep_pubmed, steps_done, work_dir,  # noqa: E402
                       write_json)
from fresh_lib import fresh_training_data, shared_or_none  # noqa: E402

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


def train(conf, *extra):
    p = subprocess.run([medtune(), "train", conf, *extra], capture_output=True, text=True)
    if p.returncode != 0:
        fail(f"medtune train {conf} {' '.join(extra)}: exit {p.returncode}: {p.stderr[-2000:]}")
    return p


def info_threads(run_dir):
    p = subprocess.run([medtune(), "info", run_dir, "--json"], capture_output=True, text=True)
    if p.returncode != 0:
        fail(f"medtune info {run_dir}: {p.stderr}")
    return json.loads(p.stdout).get("threads")


def check_threads(work, model, shards, replay):
    runs = {}
    for threads in (1, 2, 3):
        name = f"t{threads}"
        train(config(work, name, model, shards, replay, threads))
        runs[threads] = os.path.join(work, name)
        if info_threads(runs[threads]) != threads:
            fail(f"threads {threads}: the checkpoint records {info_threads(runs[threads])}")
    compare(runs[1], runs[2], "threads 1 vs 2")
    compare(runs[1], runs[3], "threads 1 vs 3")

    # Started with 2 threads, stopped by SIGTERM, resumed with 1.
    conf = config(work, "moved", model, shards, replay, 2)
    run_dir = os.path.join(work, "moved")
    p = subprocess.Popen([medtune(), "train", conf], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    while steps_done(run_dir) < 7 and p.poll() is None:
        time.sleep(0.02)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate()
    stopped = steps_done(run_dir)
    if p.returncode != 0 or "stopped at step" not in err or stopped >= STEPS:
        fail(f"SIGTERM: exit {p.returncode} after {stopped} steps: {err[-1000:]}")
    if info_threads(run_dir) != 2:
        fail(f"the checkpoint written at the stop records {info_threads(run_dir)} threads, not 2")
    train(conf, "--resume", "--set", "threads=1")
    print(f"2 threads stopped after step {stopped}, resumed with 1 thread")
    if info_threads(run_dir) != 1:
        fail(f"the last checkpoint records {info_threads(run_dir)} threads, not 1")
    compare(runs[1], run_dir, "2 threads, SIGTERM, resumed with 1")


def main():
    work = work_dir("threads_random")
    print("random GQA model, quickstart sample (replay: its Q&A pairs in the chat template)")
    check_threads(work, *fresh_training_data(work))
    shared = shared_or_none()
    if shared:
        work = work_dir("threads")
        model = os.path.join(shared, "models/tinystories-656k")
        print(f"tinystories-656k, PubMed sample: {model}")
        shards = prep_pubmed(shared, os.path.join(work, "shards"), model)
        check_threads(work, model, shards, shards)
    print("PASS")


if __name__ == "__main__":
    main()
