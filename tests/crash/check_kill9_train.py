#!/usr/bin/env python3
"""kill -9 of `medtune train` at KILLS random moments, each followed by `--resume`, gives the
run that was never interrupted: the same metrics.jsonl losses as text, line for line, and
byte-identical final adapter files.

The run (the tiny self-initialised model on the quickstart samples as text) saves a checkpoint
after every step, so many kills land inside a checkpoint write. Kill moments are seeded
(MEDTUNE_TEST_SEED): kill i comes u_i * WINDOW after the process starts, u_i uniform in [0, 1)
from the seed, and WINDOW is the startup plus three steps (with their checkpoints) as measured
on this machine by a calibration run, so the same seed kills at the same fractions of the
same phases everywhere.

Where each kill landed is found at the moment of the kill: the process is stopped with
SIGSTOP, its state is read, then it gets SIGKILL, so nothing moves in between. The first kill
is not random: it comes just after the step-0 evaluation line, before the first checkpoint, so
the second start is a new run (no checkpoint to resume) over a metrics.jsonl with a line in it.
Phases:
  startup     it has not yet printed "medtune: training" (loading the model and the shards,
              restoring the checkpoint, rewriting config.json and metrics.jsonl);
  checkpoint  a checkpoint is being written: a step_N.tmp/ directory exists (state.h5 and the
              adapter being written and fsynced), or `latest` does not yet name the newest
              step_N/ (rename done, latest being replaced), or a latest.tmp.* file exists, or
              more than keep_last checkpoints exist (pruning), or the process holds a file
              under checkpoints/ open;
  step        otherwise: a training step, an evaluation or a metrics line."""
import json
import os
import random
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crash_lib import fail, medtune_bin, prep_config, run, tiny_model, train_config, work_dir  # noqa: E402

KILLS = 100
KEEP_LAST = 2


def loss_lines(run_dir):
    """Every metrics.jsonl line as (step, the exact text of its loss and val_loss fields)."""
    out = []
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            step = json.loads(line)["step"]
            fields = [p for p in line.strip("{}\n").split(", ")
                      if p.startswith(('"loss"', '"val_loss"'))]
            out.append((step, fields))
    return out


def adapter_files(run_dir):
    d = os.path.join(run_dir, "adapter")
    return {n: open(os.path.join(d, n), "rb").read() for n in sorted(os.listdir(d))}


def start(conf, resume, log, extra=()):
    args = [medtune_bin(), "train", conf] + (["--resume"] if resume else []) + list(extra)
    with open(log, "w") as err:
        return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err)


def stopped(pid):
    """Waits until the stopped process shows state T (a syscall in progress finishes first)."""
    for _ in range(5000):
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in "TtZ":
                    return
        except FileNotFoundError:
            return
        time.sleep(0.001)
    fail(f"process {pid} did not stop within 5 s of SIGSTOP")


def classify(pid, run_dir, log):
    """The phase a stopped train process is in (see the module docstring)."""
    if "medtune: training" not in open(log).read():
        return "startup"
    ck = os.path.join(run_dir, "checkpoints")
    names = os.listdir(ck) if os.path.isdir(ck) else []
    steps = sorted(n for n in names if n.startswith("step_") and n[5:].isdigit())
    try:
        latest = open(os.path.join(ck, "latest")).read().strip()
    except FileNotFoundError:
        latest = None
    fds = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            fds.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except FileNotFoundError:
            pass
    if any(n.endswith(".tmp") for n in names):
        return "checkpoint: writing step_N.tmp/"
    if any(n.startswith("latest.tmp.") for n in names) or (steps and latest != steps[-1]):
        return "checkpoint: renamed, replacing latest"
    if len(steps) > KEEP_LAST:
        return "checkpoint: pruning"
    if any(f.startswith(ck + "/") or f == ck for f in fds):
        return "checkpoint: other"
    return "step"


def steps_logged(run_dir):
    try:
        return len(open(os.path.join(run_dir, "metrics.jsonl")).read().splitlines())
    except FileNotFoundError:
        return 0


def steps_done(run_dir):
    try:
        return sum(1 for _, fields in loss_lines(run_dir) if any(f.startswith('"loss"')
                                                                  for f in fields))
    except (FileNotFoundError, json.JSONDecodeError):
        return 0


def calibrate(work, model, shards):
    """Seconds of startup and of one step with its checkpoint, from an 8-step run."""
    out = os.path.join(work, "calibrate")
    conf = train_config(work, "calibrate", model, shards, out, steps=8, keep_last=KEEP_LAST)
    t0 = time.monotonic()
    run(["train", conf])
    wall = time.monotonic() - t0
    loop = json.loads(open(os.path.join(out, "metrics.jsonl")).read().splitlines()[-1])["elapsed_s"]
    return max(wall - loop, 0.01), max(loop / 8, 0.005)


def main():
    work = work_dir("kill9_train")
    model = tiny_model(work)
    shards = os.path.join(work, "shards")
    run(["prep", prep_config(work, "prep", model, shards)])
    startup, step = calibrate(work, model, shards)
    window = startup + 3 * step
    # A kill at u * WINDOW lets about three steps finish at most, one or two on average.
    total = 4 * KILLS + 20
    print(f"calibration: startup {startup * 1e3:.0f} ms, step with checkpoint {step * 1e3:.0f} "
          f"ms; kills uniform in [0, {window * 1e3:.0f} ms) after the start; {total} steps")

    straight = os.path.join(work, "straight")
    run(["train", train_config(work, "straight", model, shards, straight, steps=total,
                               save_every=0, keep_last=KEEP_LAST)])

    killed = os.path.join(work, "killed")
    conf = train_config(work, "killed", model, shards, killed, steps=total, keep_last=KEEP_LAST)
    rng = random.Random(int(os.environ.get("MEDTUNE_TEST_SEED", "1")))
    log = os.path.join(work, "stderr.txt")
    phases, kills, resumes, t0 = {}, 0, 0, time.monotonic()
    while kills < KILLS:
        resume = os.path.exists(os.path.join(killed, "checkpoints/latest"))
        resumes += resume
        p = start(conf, resume, log)
        if kills == 0:
            # The first kill comes once the step-0 evaluation is logged, before the first
            # checkpoint: the next start is then a new run over a metrics.jsonl with a line.
            while steps_logged(killed) == 0 and p.poll() is None:
                time.sleep(0.0005)
        else:
            time.sleep(rng.random() * window)
        if p.poll() is not None:
            if p.returncode != 0:
                fail(f"the run after {kills} kills failed: {open(log).read()[-1500:]}")
            fail(f"the run finished after {kills} kills: it needs more steps")
        p.send_signal(signal.SIGSTOP)
        stopped(p.pid)
        phase = classify(p.pid, killed, log)
        p.kill()
        p.wait()
        phases[phase] = phases.get(phase, 0) + 1
        kills += 1
        if kills == 1:
            first = "a new run over a metrics.jsonl with a line" if steps_logged(killed) and \
                not os.path.exists(os.path.join(killed, "checkpoints/latest")) else \
                "a --resume (the first kill came after the first checkpoint)"
    done = steps_done(killed)
    chain = time.monotonic() - t0
    # The rest of the run, uninterrupted; save_every may change on resume.
    p = start(conf, True, log, ["--set", "save_every=0"])
    if p.wait() != 0:
        fail(f"the final resume failed: {open(log).read()[-1500:]}")

    print(f"kill -9 {kills} times in {chain:.0f} s ({resumes} of the starts were --resume; the "
          f"second start was {first}), {done} of {total} steps done by then; where the kills "
          "landed:")
    for name in sorted(phases):
        print(f"  {phases[name]:4d}  {name}")
    want, got = loss_lines(straight), loss_lines(killed)
    if got != want:
        bad = next(i for i in range(min(len(got), len(want))) if got[i] != want[i]) \
            if any(g != w for g, w in zip(got, want)) else min(len(got), len(want))
        fail(f"metrics.jsonl differs from the uninterrupted run at line {bad + 1} "
             f"({len(got)} vs {len(want)} lines): {got[bad:bad + 2]} vs {want[bad:bad + 2]}")
    if adapter_files(killed) != adapter_files(straight):
        fail("the final adapter files differ from the uninterrupted run's")
    print(f"{len(want)} metrics lines with identical loss text, adapter files byte-identical")
    print("PASS")


if __name__ == "__main__":
    main()
