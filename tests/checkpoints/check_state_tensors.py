#!/usr/bin/env python3
"""A LoRA or AdamW tensor of state.h5 that cannot be used gives one error line that names the
dataset and says what is wrong with it (checkpoints/state.c read_tensor), for export and
resume alike:
  - the right shape but data that does not convert to float32 (strings): "unreadable", and
    not a shape complaint (the message used to print two equal shapes);
  - a vector instead of a matrix: its rank;
  - a matrix of another shape: both shapes.
The files are edited with h5py and checksummed again as medtune writes them."""
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checkpoints_lib import fail, finished_run, state_reseal, train, work_dir  # noqa: E402
from testlib import expect_error  # noqa: E402


def latest_ckpt(run_dir):
    name = open(os.path.join(run_dir, "checkpoints", "latest")).read().strip()
    return os.path.join(run_dir, "checkpoints", name)


def variant(run_dir, work, label, group, make):
    """A copy of the run with the first dataset of `group` replaced by make(shape, np);
    returns (run copy, dataset path, original shape)."""
    import h5py
    import numpy as np
    dst = os.path.join(work, label)
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(run_dir, dst)
    state = os.path.join(latest_ckpt(dst), "state.h5")
    with h5py.File(state, "r+") as f:
        g = f[group]
        name = sorted(g)[0]
        shape = g[name].shape
        del g[name]
        g.create_dataset(name, data=make(shape, np))
    state_reseal(state)
    return dst, f"/{group}/{name}", shape


def main():
    work = work_dir("state_tensors")
    conf, run_dir = finished_run(work, steps=2)

    dst, ds, shape = variant(run_dir, work, "strings", "lora",
                             lambda s, np: np.full(s, b"x", dtype="S1"))
    err = expect_error(["export", latest_ckpt(dst), os.path.join(work, "out")], ds, "unreadable")
    if "shape" in err:
        fail(f"a dataset of the right shape {list(shape)} is reported as a shape problem: {err}")
    p = train(conf, resume=True, out_dir=dst)
    errors = [l for l in p.stderr.splitlines() if l.startswith("medtune: error:")]
    if p.returncode != 1 or len(errors) != 1 or ds not in errors[0] or "unreadable" not in errors[0]:
        fail(f"resume: exit {p.returncode}, expected 1 and one error naming {ds} as "
             f"unreadable:\n{p.stderr[-1500:]}")
    print(f"resume: {errors[0]}")

    dst, ds, shape = variant(run_dir, work, "vector", "adam/m",
                             lambda s, np: np.zeros(s[0] * s[1], dtype=np.float32))
    expect_error(["export", latest_ckpt(dst), os.path.join(work, "out")], ds, "rank 1",
                 f"[{shape[0]}, {shape[1]}]")

    dst, ds, shape = variant(run_dir, work, "wider", "adam/v",
                             lambda s, np: np.zeros((s[0], s[1] + 1), dtype=np.float32))
    expect_error(["export", latest_ckpt(dst), os.path.join(work, "out")], ds,
                 f"shape [{shape[0]}, {shape[1] + 1}], expected [{shape[0]}, {shape[1]}]")
    print("PASS")


if __name__ == "__main__":
    main()
