#!/usr/bin/env python3
"""A checkpoint that replaces one of the same step (a finished run resumed, which saves its
last step again) must leave checkpoints/latest naming a complete checkpoint at every instant.
The run is crashed (as by kill -9) at each change of the checkpoint tree in turn - every
rename, unlink and rmdir under checkpoints/ - and after each crash latest must name a
complete checkpoint, and a --resume must finish the run with the original final adapter.
Done twice: with the atomic directory exchange (renameat2 RENAME_EXCHANGE) and with a
filesystem that refuses it (the fallback)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checkpoints_lib import (CRASHED, check_latest_complete, copy_run, fail, fault_env,  # noqa: E402
                             finished_run, train, work_dir)

STEPS = 2


def sweep(conf, finished, work, label, **faults):
    adapter = open(os.path.join(finished, "adapter", "adapter_model.safetensors"), "rb").read()
    for k in range(1, 200):
        run_dir = copy_run(finished, os.path.join(work, "crash"))
        p = train(conf, resume=True, env=fault_env(CRASH_AT=k, **faults), out_dir=run_dir)
        if p.returncode == 0:
            print(f"{label}: crashed at each of the {k - 1} changes of the checkpoint tree; "
                  "latest named a complete checkpoint after every one")
            if k < 4:
                fail(f"{label}: only {k - 1} changes: the save did not replace the checkpoint")
            return
        if p.returncode != CRASHED:
            fail(f"{label}: crash point {k}: exit {p.returncode}: {p.stderr[-1500:]}")
        check_latest_complete(run_dir, STEPS, f"{label}: crash before change {k}")
        p = train(conf, resume=True, out_dir=run_dir)
        if p.returncode != 0:
            fail(f"{label}: resume after crash point {k} failed: {p.stderr[-1500:]}")
        check_latest_complete(run_dir, STEPS, f"{label}: resume after crash point {k}")
        got = open(os.path.join(run_dir, "adapter", "adapter_model.safetensors"), "rb").read()
        if got != adapter:
            fail(f"{label}: crash point {k}: the final adapter changed")
    fail(f"{label}: the save never completed")


def main():
    work = work_dir("crash_window")
    conf, finished = finished_run(work, steps=STEPS)
    check_latest_complete(finished, STEPS, "finished run")
    sweep(conf, finished, work, "exchange")
    sweep(conf, finished, work, "no exchange (fallback)", NO_EXCHANGE=1)
    print("PASS")


if __name__ == "__main__":
    main()
