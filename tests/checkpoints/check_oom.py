#!/usr/bin/env python3
"""Out of memory while the checkpoints are listed (checkpoints/run_dir.c list_step_dirs, used
to prune old checkpoints and to clean partial ones) must end the run with exactly one error
line and exit 1 - not a crash, and not a silently shortened list (which would skip pruning).
The failing strdup() or realloc() comes from the fault-injection library (fault_inject.c):
the first allocation after readdir() returns a step_* entry fails."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checkpoints_lib import (check_latest_complete, copy_run, fail, fault_env, finished_run,  # noqa: E402
                             train, work_dir)


def main():
    work = work_dir("oom")
    conf, finished = finished_run(work, steps=3, keep_last=5)
    for call in ("strdup", "realloc"):
        run_dir = copy_run(finished, os.path.join(work, "run_" + call))
        env = fault_env(OOM_AFTER="step_", OOM_CALL=call)
        p = train(conf, resume=True, env=env, out_dir=run_dir)
        errors = [l for l in p.stderr.splitlines() if l.startswith("medtune: error:")]
        if p.returncode != 1 or len(errors) != 1:
            fail(f"{call} fails: exit {p.returncode}, expected 1 with one error line; "
                 f"stderr:\n{p.stderr[-2000:]}")
        if "out of memory" not in errors[0] or "checkpoints" not in errors[0]:
            fail(f"{call} fails: the error does not say out of memory in checkpoints: {errors[0]}")
        print(f"{call} fails while listing checkpoints: {errors[0]}")
        check_latest_complete(run_dir, 3, f"after the failed {call}")
    print("PASS")


if __name__ == "__main__":
    main()
