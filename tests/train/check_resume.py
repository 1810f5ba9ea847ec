#!/usr/bin/env python3
"""Bit-exact resume: 40 steps straight vs. (a) SIGTERM mid-run + --resume, and (b) kill -9 at
random moments (checkpoints every step, so many kills land inside a checkpoint write) each
followed by --resume. Losses in metrics.jsonl must be identical as text (17 significant
digits, i.e. the same double) and the final adapter byte-identical. Also exercised: shuffling,
LoRA dropout, replay mixing, gradient accumulation, evaluation. Always on a random-weight GQA
model with the quickstart sample (text shards, replay from the Q&A pairs in the chat template);
also on tinystories-656k with the PubMed sample when ../shared is there."""
import os
import random
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from train_lib import (compare, fail, fresh_then_shared, medtune, steps_done,  # noqa: E402
                       train_until_sigterm, write_json)

STEPS = 40


def config(work, name, model, shards, replay, save_every):
    path = os.path.join(work, name + ".json")
    write_json(path, {"model": model, "data": {"train": shards, "replay": replay,
                                                "replay_ratio": 0.25},
                      "lora": {"r": 4, "alpha": 8, "dropout": 0.1},
                      "optim": {"lr": 1e-3, "weight_decay": 0.01},
                      "schedule": {"warmup_steps": 4, "decay": "cosine", "min_lr_ratio": 0.1},
                      "batch": {"micro_batch": 2, "seq_len": 64, "grad_accum": 2},
                      "steps": STEPS, "shuffle": True, "seed": 3, "threads": 2,
                      "eval_every": 10, "eval_batches": 2, "save_every": save_every,
                      "keep_last": 2, "out_dir": os.path.join(work, name)})
    return path


def start(conf, resume):
    args = [medtune(), "train", conf] + (["--resume"] if resume else [])
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)



def check_resume(work, model, shards, replay):
    straight = config(work, "straight", model, shards, replay, 10)
    p = start(straight, False)
    out, err = p.communicate()
    if p.returncode != 0:
        fail(f"straight run failed: {err[-2000:]}")

    # (a) SIGTERM once some steps are done: the step finishes, a checkpoint is written, exit 0.
    term = config(work, "sigterm", model, shards, replay, 10)
    stopped = train_until_sigterm(term, os.path.join(work, "sigterm"), 13, STEPS)
    p = start(term, True)
    out, err = p.communicate()
    if p.returncode != 0:
        fail(f"resume after SIGTERM failed: {err[-2000:]}")
    print(f"SIGTERM after step {stopped}, resumed")
    compare(os.path.join(work, "straight"), os.path.join(work, "sigterm"), "SIGTERM + resume")

    # (b) kill -9 at random moments, checkpoints every step.
    rng = random.Random(int(os.environ.get("MEDTUNE_TEST_SEED", "1")))
    kill = config(work, "kill9", model, shards, replay, 1)
    run_dir = os.path.join(work, "kill9")
    kills = mid_write = 0
    for attempt in range(60):
        resume = os.path.exists(os.path.join(run_dir, "checkpoints/latest"))
        p = start(kill, resume)
        if kills < 8:
            before = steps_done(run_dir)
            while steps_done(run_dir) <= before + rng.randint(0, 2) and p.poll() is None:
                time.sleep(0.002)
            # Steps take tens of milliseconds here; a checkpoint is written after every one.
            time.sleep(rng.uniform(0.0, 0.03))
            if p.poll() is None:
                p.kill()
                p.communicate()
                kills += 1
                ckpts = os.path.join(run_dir, "checkpoints")
                mid_write += any(n.endswith(".tmp") for n in os.listdir(ckpts)) \
                    if os.path.isdir(ckpts) else 0
                continue
        out, err = p.communicate()
        if p.returncode != 0:
            fail(f"run after {kills} kills failed: {err[-2000:]}")
        if steps_done(run_dir) >= STEPS and os.path.exists(os.path.join(run_dir, "adapter")):
            break
    print(f"kill -9 {kills} times at random moments ({mid_write} inside a checkpoint write), "
          "resumed each time")
    if kills < 3:
        fail("fewer than 3 kills landed; the test did not exercise crashes")
    compare(os.path.join(work, "straight"), run_dir, "kill -9 + resume")


def main():
    fresh_then_shared("resume", check_resume)


if __name__ == "__main__":
    main()
