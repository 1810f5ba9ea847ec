#!/usr/bin/env python3
"""N ranks x grad_accum A against 1 process x grad_accum N*A on the tiny model, with shuffle,
LoRA dropout, replay and evaluation on: identical losses and val losses as text and
byte-identical adapters, for (N, A) = (2, 1), (3, 1), (2, 2). r = 64 makes the gradient
longer than one chunk of the chain (2^18 floats), so the pipelined chunks are exercised.
Also: metrics.jsonl records world_size, tokens count every rank, rank 0 alone prints, and a
bad config gives one error line."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mpi_lib import (compare, config, fail, metric_rows, prep_pubmed, require_mpi_build,  # noqa
                     shared_dir, train, work_dir)

STEPS = 10


def main():
    shared = shared_dir()
    require_mpi_build()
    work = work_dir("parity")
    shards = prep_pubmed(shared, os.path.join(work, "shards"),
                         os.path.join(shared, "models/tinystories-656k"))
    for n, a in ((2, 1), (3, 1), (2, 2)):
        one = config(work, f"one_ga{n * a}_{n}x{a}", shards, STEPS, n * a, r=64)
        many = config(work, f"ranks{n}_ga{a}", shards, STEPS, a, r=64)
        train(one, 0)
        p = train(many, n)
        one_dir, many_dir = one[:-5], many[:-5]
        compare(one_dir, many_dir, f"{n} ranks x grad_accum {a} vs 1 x {n * a}")
        rows = [r for r in metric_rows(many_dir) if "loss" in r]
        if {r["world_size"] for r in rows} != {n}:
            fail(f"world_size in metrics.jsonl: {sorted({r['world_size'] for r in rows})}, "
                 f"expected {n}")
        ref = [r for r in metric_rows(one_dir) if "loss" in r]
        if [r["tokens"] for r in rows] != [r["tokens"] for r in ref]:
            fail("tokens in metrics.jsonl do not count every rank's micro-batches")
        done = [l for l in p.stderr.splitlines() if l.startswith("medtune: done")]
        if len(done) != 1 or f"on {n} ranks" not in done[0]:
            fail(f"expected one 'done' line naming {n} ranks (rank 0 alone prints):\n{p.stderr}")
        progress = [l for l in p.stderr.splitlines() if l.startswith("step ") and "tok/s" in l]
        if not progress or any(f"| {n} ranks |" not in l for l in progress):
            fail(f"progress lines must show the {n} ranks:\n{p.stderr}")
        steps = sorted(os.listdir(os.path.join(many_dir, "checkpoints")))
        if steps != sorted(os.listdir(os.path.join(one_dir, "checkpoints"))):
            fail(f"checkpoints differ: {steps}")

    print("PASS")


if __name__ == "__main__":
    main()
