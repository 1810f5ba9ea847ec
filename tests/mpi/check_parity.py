#!/usr/bin/env python3
"""N ranks x grad_accum A against 1 process x grad_accum N*A on the tiny model, with shuffle,
LoRA dropout, replay and evaluation on: identical losses and val losses as text and
byte-identical adapters, for (N, A) = (2, 1), (3, 1), (2, 2), and (2, 1) again launched with
a hostfile over TCP on the loopback interface (the transport between machines). r = 64 makes the gradient
longer than one chunk of the chain (2^18 floats), so the pipelined chunks are exercised.
Also: metrics.jsonl records world_size, tokens count every rank, rank 0 alone prints, and a
bad config gives one error line."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mpi_lib import (compare, config, fail, lsan_env, metric_rows, prep_pubmed,  # noqa
                     require_mpi_build, shared_dir, train, train_cmd, work_dir)
import subprocess  # noqa: E402

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

    # The launch of a multi-machine job: a hostfile, and TCP (the transport between machines)
    # on the loopback interface instead of shared memory.
    hosts = os.path.join(work, "hosts")
    with open(hosts, "w") as f:
        f.write("localhost slots=2\n")
    tcp = config(work, "ranks2_tcp", shards, STEPS, 1, r=64)
    cmd = train_cmd(tcp, 2)
    i = cmd.index("self,vader")
    cmd[i:i + 1] = ["self,tcp", "--mca", "btl_tcp_if_include", "lo", "--hostfile", hosts]
    p = subprocess.run(cmd, capture_output=True, text=True, env=lsan_env(), timeout=900)
    if p.returncode != 0:
        fail(f"2 ranks over TCP with a hostfile: exit {p.returncode}:\n{p.stderr[-3000:]}")
    compare(os.path.join(work, "one_ga2_2x1"), tcp[:-5], "2 ranks over TCP (hostfile) vs 1 x 2")

    print("PASS")


if __name__ == "__main__":
    main()
