#!/usr/bin/env python3
"""Failures under mpirun -np 2 give one `medtune: error:` line (from the rank that failed, or
rank 0 when every rank sees it) and leave the last checkpoint intact:
- a full disk on rank 0 while it writes a checkpoint (a tmpfs of 1.6 checkpoints, measured on
  a one-process run of the same job: one checkpoint fits, the second does not); the other rank
  stops too instead of waiting forever;
- a NaN loss (MEDTUNE_INJECT_NAN_STEP), seen by every rank;
- ranks with different configs (`--set` on one rank only), refused before anything is written.
And rank 1 never writes: it trains with the run directory mounted read-only in its own mount
namespace, and the run still completes, identical to one process with grad_accum 2."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mpi_lib import (config, fail, fresh_data, lsan_env, medtune_bin, mpirun_args,  # noqa
                     require_mpi_build, train_cmd, work_dir)


def one_error(cmd, needle, env=None, label=""):
    """needle: the text the error line must hold, or a tuple of texts it must hold one of."""
    needles = needle if isinstance(needle, tuple) else (needle,)
    p = subprocess.run(cmd, capture_output=True, text=True, env=env or lsan_env(), timeout=600)
    errors = [l for l in p.stderr.splitlines() if l.startswith("medtune: error:")]
    if p.returncode == 0 or len(errors) != 1 or \
            not any(n in errors[0] for n in needles):
        fail(f"{label}: expected exit != 0 and one error line naming {needle!r}, got exit "
             f"{p.returncode}:\n{p.stderr[-3000:]}")
    print(f"ok: {label}: {errors[0]}")
    return errors[0]


def checkpoint_kib(work, data):
    """Disk use of one checkpoint of the disk-full job (1 KiB units), from a one-process run."""
    conf = config(work, "full_size", data, 2, 2, save_every=2, eval_every=0)
    p = subprocess.run([medtune_bin(), "train", conf], capture_output=True, text=True,
                       env=lsan_env())
    if p.returncode != 0:
        fail(f"one process: {p.stderr[-2000:]}")
    du = subprocess.run(["du", "-sk", os.path.join(conf[:-5], "checkpoints", "step_00000002")],
                        capture_output=True, text=True, check=True)
    return int(du.stdout.split()[0])


def disk_full(work, data):
    mnt = os.path.join(work, "tinyfs")
    os.makedirs(mnt)
    size = int(1.6 * checkpoint_kib(work, data))
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}k", "tmpfs", mnt],
                      capture_output=True).returncode != 0:
        print("note: cannot mount a small tmpfs here (not root?); disk-full check skipped")
        return
    try:
        conf = config(work, "full", data, 8, 1, save_every=2, eval_every=0)
        out = os.path.join(mnt, "run")
        one_error(train_cmd(conf, 2, sets=[f"out_dir={out}", "keep_last=1"]),
                  # Which file the disk fills in depends on the checkpoint's size: the
                  # adapter (errno's text) or state.h5 (HDF5 hides errno).
                  ("No space left on device", "state failed (disk full?)"),
                  label="disk full on rank 0")
        latest = open(os.path.join(out, "checkpoints/latest")).read().strip()
        left = sorted(os.listdir(os.path.join(out, "checkpoints")))
        if left != ["latest", latest]:
            fail(f"after disk full, checkpoints/ holds {left}")
        p = subprocess.run([medtune_bin(), "info",
                            os.path.join(out, "checkpoints", latest, "adapter")],
                           capture_output=True, text=True)
        if p.returncode != 0:
            fail(f"the checkpoint left by the disk-full job is unreadable: {p.stderr}")
        print(f"ok: {latest} is intact and latest ({size} KiB tmpfs)")
    finally:
        subprocess.run(["umount", mnt])


def rank1_read_only(work, data):
    if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        print("note: no mount namespaces here (unshare -m); read-only rank 1 check skipped")
        return
    ref = config(work, "ref_ga2", data, 6, 2, save_every=3, eval_every=3)
    p = subprocess.run([medtune_bin(), "train", ref], capture_output=True, text=True,
                       env=lsan_env())
    if p.returncode != 0:
        fail(f"one process: {p.stderr[-2000:]}")
    conf = config(work, "ro", data, 6, 1, save_every=3, eval_every=3)
    out = conf[:-5]
    os.makedirs(out)
    # The probe must fail (read-only) before rank 1 starts, else the wrapper exits 1.
    wrapper = (f"mount --bind {out} {out} && mount -o remount,ro,bind {out} && "
               f"! touch {out}/probe 2>/dev/null && exec {medtune_bin()} train {conf}")
    cmd = mpirun_args(1) + [medtune_bin(), "train", conf, ":", "-np", "1", "unshare", "-m",
                            "sh", "-c", wrapper]
    p = subprocess.run(cmd, capture_output=True, text=True, env=lsan_env(), timeout=600)
    if p.returncode != 0:
        fail(f"2 ranks with the run directory read-only for rank 1: exit {p.returncode}:\n"
             f"{p.stderr[-3000:]}")
    a = open(os.path.join(ref[:-5], "adapter/adapter_model.safetensors"), "rb").read()
    b = open(os.path.join(out, "adapter/adapter_model.safetensors"), "rb").read()
    if a != b:
        fail("read-only rank 1: the adapter differs from one process with grad_accum 2")
    print("ok: rank 1 trained with the run directory read-only; adapter identical")


def main():
    require_mpi_build()
    work = work_dir("faults")
    data = fresh_data(work)
    rank1_read_only(work, data)
    disk_full(work, data)

    conf = config(work, "nan", data, 8, 1, save_every=2)
    one_error(train_cmd(conf, 2), "loss is NaN",
              env=dict(lsan_env(), MEDTUNE_INJECT_NAN_STEP="5"), label="NaN at step 5")
    latest = open(os.path.join(work, "nan", "checkpoints/latest")).read().strip()
    if latest != "step_00000004":
        fail(f"after the NaN at step 5, latest is {latest}, expected step_00000004")

    # Ranks that would train different runs are refused before anything is written (MPMD
    # launch: rank 1 gets another learning rate).
    conf = config(work, "odd", data, 8, 1)
    cmd = mpirun_args(1) + [medtune_bin(), "train", conf, ":", "-np", "1", medtune_bin(),
                            "train", conf, "--set", "optim.lr=2e-3"]
    one_error(cmd, "rank 1", label="different configs")
    if os.path.exists(os.path.join(work, "odd", "metrics.jsonl")):
        fail("a refused job wrote metrics.jsonl")
    print("PASS")


if __name__ == "__main__":
    main()
