#!/usr/bin/env python3
"""Stops and crashes under mpirun, each followed by --resume, against a straight run of the
same job (losses as text and the final adapter byte-identical):
(a) SIGTERM to mpirun: every rank finishes the step, rank 0 checkpoints, resume on 2 ranks;
(b) SIGTERM to rank 1 alone: the ranks agree to stop after the same step; resume on ONE
    process with grad_accum 2 (the same global batch on another number of ranks);
(c) kill -9 of one rank at random moments (checkpoints every step, rank 0 or rank 1): the job
    ends and the last checkpoint resumes."""
import os
import random
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mpi_lib import (SIGNAL_GRACE_S, compare, config, fail, lsan_env, metric_rows,  # noqa
                     fresh_data, require_mpi_build, steps_done, train, train_cmd,
                     work_dir)

STEPS = 60


def start(conf, ranks, resume=False, grace=None):
    return subprocess.Popen(train_cmd(conf, ranks, resume, grace=grace), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=lsan_env(),
                            start_new_session=True)


def rank_pids(mpirun_pid):
    """{rank: pid} of the medtune processes mpirun started."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            if ppid != mpirun_pid:
                continue
            with open(f"/proc/{d}/environ", "rb") as f:
                env = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
            if b"OMPI_COMM_WORLD_RANK" in env:
                out[int(env[b"OMPI_COMM_WORLD_RANK"])] = int(d)
        except (OSError, ValueError, IndexError):
            continue
    return out


def wait_steps(p, run_dir, n):
    t0 = time.time()
    while steps_done(run_dir) < n and p.poll() is None:
        if time.time() - t0 > 300:
            fail(f"{run_dir}: fewer than {n} steps after 300 s")
        time.sleep(0.02)


def finish(p, label):
    try:
        out, err = p.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        fail(f"{label}: the job did not end within 300 s")
    return err


def main():
    require_mpi_build()
    work = work_dir("signals")
    data = fresh_data(work)
    straight = config(work, "straight", data, STEPS, 1, save_every=10)
    train(straight, 2)
    ref = straight[:-5]

    # (a) SIGTERM to mpirun, which forwards it SIGNAL_GRACE_S later: the run must still be
    # going then, so on a fast machine it gets more steps (and its own straight reference).
    # The margin is 10x: the reference may have run under a load that lifts before this run
    # (a 3x margin let a run finish first when the load fell from 10 to 2).
    s_per_step = metric_rows(ref)[-1]["elapsed_s"] / STEPS
    steps_a = max(STEPS, int(10 + 10 * SIGNAL_GRACE_S / max(s_per_step, 1e-3)))
    ref_a = ref
    if steps_a > STEPS:
        ref_a = config(work, "straight_a", data, steps_a, 1, save_every=10)[:-5]
        train(ref_a + ".json", 2)
    conf = config(work, "sigterm", data, steps_a, 1, save_every=10)
    run_dir = conf[:-5]
    p = start(conf, 2, grace=SIGNAL_GRACE_S)
    wait_steps(p, run_dir, 8)
    p.send_signal(signal.SIGTERM)
    err = finish(p, "SIGTERM to mpirun")
    stopped = steps_done(run_dir)
    if "stopped at step" not in err or err.count("stopped at step") != 1:
        fail(f"SIGTERM to mpirun: expected one 'stopped at step' line from rank 0:\n{err[-3000:]}")
    if stopped >= steps_a:
        fail("SIGTERM arrived after the run ended; the test needs a slower run")
    if not os.path.exists(os.path.join(run_dir, "checkpoints", f"step_{stopped:08d}")):
        fail(f"no checkpoint of step {stopped}, the last step in metrics.jsonl")
    train(conf, 2, resume=True)
    print(f"SIGTERM to mpirun after step {stopped}: checkpoint of that step, resumed on 2 ranks")
    compare(ref_a, run_dir, f"SIGTERM to mpirun + resume ({steps_a} steps)")

    # (b) SIGTERM to rank 1 alone; resume on one process with the same global batch.
    conf = config(work, "rank1", data, STEPS, 1, save_every=10)
    run_dir = conf[:-5]
    p = start(conf, 2)
    wait_steps(p, run_dir, 8)
    pids = rank_pids(p.pid)
    if 1 not in pids:
        fail(f"rank 1 not found among mpirun's children: {pids}")
    os.kill(pids[1], signal.SIGTERM)
    err = finish(p, "SIGTERM to rank 1")
    if p.returncode != 0 or "stopped at step" not in err:
        fail(f"SIGTERM to rank 1: exit {p.returncode}:\n{err[-3000:]}")
    stopped = steps_done(run_dir)
    train(conf, 0, resume=True, sets=["batch.grad_accum=2"])
    print(f"SIGTERM to rank 1 after step {stopped}: all ranks stopped; resumed on 1 process "
          "with grad_accum 2")
    compare(ref, run_dir, "SIGTERM to one rank + resume on another number of ranks")

    # (c) kill -9 of one rank at random moments, checkpoints every step.
    rng = random.Random(int(os.environ.get("MEDTUNE_TEST_SEED", "1")))
    conf = config(work, "kill9", data, STEPS, 1, save_every=1)
    run_dir = conf[:-5]
    kills = 0
    for attempt in range(20):
        resume = os.path.exists(os.path.join(run_dir, "checkpoints/latest"))
        p = start(conf, 2, resume=resume)
        if kills < 4:
            wait_steps(p, run_dir, steps_done(run_dir) + rng.randint(1, 3))
            time.sleep(rng.uniform(0.0, 0.05))
            pids = rank_pids(p.pid)
            victim = kills % 2
            if p.poll() is None and victim in pids:
                os.kill(pids[victim], signal.SIGKILL)
                finish(p, "kill -9")
                kills += 1
                print(f"kill -9 rank {victim} at step {steps_done(run_dir)}: job ended with "
                      f"exit {p.returncode}")
                continue
        err = finish(p, "run after kills")
        if p.returncode != 0:
            fail(f"run after {kills} kills failed:\n{err[-3000:]}")
        if os.path.exists(os.path.join(run_dir, "adapter")):
            break
    if kills < 3:
        fail("fewer than 3 kills landed; the test did not exercise crashes")
    compare(ref, run_dir, f"kill -9 of a rank x{kills} + resume")
    print("PASS")


if __name__ == "__main__":
    main()
