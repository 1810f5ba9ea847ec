#!/usr/bin/env python3
"""kill -9 in the replace window: a resumed run that saves its checkpoint again with no step in
between. `medtune train --resume` of a run whose `latest` is already at its last step (it was
killed after that checkpoint, before or while writing OUT/adapter/) writes step_N/ once more,
replacing the one `latest` names, and then the final adapter.

A finished run is copied afresh for every kill; `--resume` of the copy is killed with SIGKILL
just before one of its file-changing syscalls (strace), chosen as: every rename, unlink and
rmdir (the replacement of step_N/ and of adapter/ is made of them) plus a seeded sample of the
others. Then `--resume` runs again, uninterrupted: it must succeed and leave the losses and the
adapter files of the finished run. Every failing kill is listed with the state it left."""
import json
import os
import random
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crash_lib import (fail, medtune_bin, need_strace, pick, prep_config, run,  # noqa: E402
                       run_killed, tiny_model, trace_writes, train_config, work_dir)

OTHERS = 30  # kill points besides every rename, unlink and rmdir
STEPS = 4


def result(run_dir):
    lines = []
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            fields = [p for p in line.strip("{}\n").split(", ")
                      if p.startswith(('"step"', '"loss"', '"val_loss"'))]
            lines.append(fields)
    ad = os.path.join(run_dir, "adapter")
    files = {n: open(os.path.join(ad, n), "rb").read() for n in sorted(os.listdir(ad))} \
        if os.path.isdir(ad) else {}
    return lines, files


def state(run_dir):
    """What a kill left: the checkpoint directories, latest, and the adapter directories."""
    ck = os.path.join(run_dir, "checkpoints")
    names = sorted(os.listdir(ck))
    latest = open(os.path.join(ck, "latest")).read().strip() if "latest" in names else None
    step = f"step_{STEPS:08d}"
    parts = [f"latest={latest}"]
    for n in names:
        if n.startswith("step_"):
            p = os.path.join(ck, n)
            parts.append(n + ("(" + ",".join(sorted(os.listdir(p))) + ")"))
    parts += [n + "/" for n in sorted(os.listdir(run_dir)) if n.startswith("adapter")]
    window = f"{step}.tmp" in names and (
        step not in names or sorted(os.listdir(os.path.join(ck, step))) != ["adapter", "state.h5"])
    return " ".join(parts), window


def main():
    need_strace()
    work = work_dir("kill9_replace")
    model = tiny_model(work)
    shards = os.path.join(work, "shards")
    run(["prep", prep_config(work, "prep", model, shards)])
    done = os.path.join(work, "done")
    conf = train_config(work, "done", model, shards, done, steps=STEPS)
    run(["train", conf])
    want = result(done)

    target = os.path.join(work, "run")
    args = ["train", conf, "--resume", "--set", f"out_dir={target}"]
    shutil.copytree(done, target)
    events = trace_writes(args, log_dir=work)
    if result(target) != want:
        fail("--resume of the finished run (no kill) changed its losses or adapter")
    rng = random.Random(int(os.environ.get("MEDTUNE_TEST_SEED", "1")))
    n_structural = sum(name.startswith(("rename", "unlink", "rmdir")) for name, _ in events)
    points = pick(events, n_structural + OTHERS, rng)

    in_window, failures = 0, []
    for i in points:
        shutil.rmtree(target)
        shutil.copytree(done, target)
        if not run_killed(args, events[i], cwd=work):
            fail(f"the kill before {events[i]} did not happen")
        left, window = state(target)
        in_window += window
        p = subprocess.run([medtune_bin()] + args, capture_output=True, text=True)
        err = [line for line in p.stderr.splitlines() if line.startswith("medtune: error")]
        if p.returncode != 0:
            failures.append(f"kill before {events[i][0]} #{events[i][1]} (point {i}) left "
                            f"[{left}]{' (replace window)' if window else ''}; the next --resume "
                            f"failed: {err[0] if err else p.stderr[-300:]}")
        elif result(target) != want:
            failures.append(f"kill before {events[i][0]} #{events[i][1]} (point {i}) left "
                            f"[{left}]; the next --resume gave other losses or adapter files")
    print(f"--resume of a finished run: {len(events)} write syscalls; {len(points)} kills "
          f"({n_structural} before a rename/unlink/rmdir), {in_window} left step_"
          f"{STEPS:08d}.tmp/ with step_{STEPS:08d}/ missing or incomplete (the replace window)")
    if failures:
        print(f"{len(failures)} kills broke the run:")
        for f in failures:
            print("  " + f)
        fail(f"{len(failures)} of {len(points)} kills left a run that --resume cannot finish")
    print("every kill was followed by a --resume that finished the run identically")
    print("PASS")


if __name__ == "__main__":
    main()
