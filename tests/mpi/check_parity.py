#!/usr/bin/env python3
"""N ranks x grad_accum A against 1 process x grad_accum N*A on the tiny model, with shuffle,
LoRA dropout, replay and evaluation on: identical losses and val losses as text and
byte-identical adapters, for (N, A) = (2, 1), (3, 1), (2, 2), and (2, 1) again launched with
a hostfile over TCP on the loopback interface (the transport between machines). r = 64 makes the gradient
longer than one chunk of the chain (2^18 floats), so the pipelined chunks are exercised (the
random model has 5 layers for that; the test checks the count). Always on a random-weight GQA
model with the quickstart sample (replay from its Q&A pairs in the chat template); also on
tinystories-656k with the PubMed sample when ../shared is there.
Also: metrics.jsonl records world_size, tokens count every rank, rank 0 alone prints, and a
bad config gives one error line."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mpi_lib import (compare, config, fail, fresh_data, lsan_env, metric_rows,  # noqa
                     require_mpi_build, shared_data, train, train_cmd, work_dir)
import subprocess  # noqa: E402

STEPS = 10
R = 64
CHUNK_FLOATS = 1 << 18  # DIST_CHUNK_FLOATS of train/dist.c


def lora_floats(model_dir, r):
    """Trainable floats of LoRA rank r on all seven linear layers, from config.json."""
    c = json.load(open(os.path.join(model_dir, "config.json")))
    d, ff = c["hidden_size"], c["intermediate_size"]
    hd = c.get("head_dim") or d // c["num_attention_heads"]
    q, kv = c["num_attention_heads"] * hd, c["num_key_value_heads"] * hd
    shapes = [(d, q), (d, kv), (d, kv), (q, d), (d, ff), (d, ff), (ff, d)]
    return c["num_hidden_layers"] * sum(r * (i + o) for i, o in shapes)


def check_parity(work, data):
    n_floats = lora_floats(data[0], R)
    if n_floats <= CHUNK_FLOATS:
        fail(f"{data[0]}: the gradient has {n_floats} floats, one chunk of the chain")
    print(f"gradient of {n_floats} floats: {-(-n_floats // CHUNK_FLOATS)} chunks")
    for n, a in ((2, 1), (3, 1), (2, 2)):
        one = config(work, f"one_ga{n * a}_{n}x{a}", data, STEPS, n * a, r=R)
        many = config(work, f"ranks{n}_ga{a}", data, STEPS, a, r=R)
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
    tcp = config(work, "ranks2_tcp", data, STEPS, 1, r=R)
    cmd = train_cmd(tcp, 2)
    i = cmd.index("self,vader")
    cmd[i:i + 1] = ["self,tcp", "--mca", "btl_tcp_if_include", "lo", "--hostfile", hosts]
    p = subprocess.run(cmd, capture_output=True, text=True, env=lsan_env(), timeout=900)
    if p.returncode != 0:
        fail(f"2 ranks over TCP with a hostfile: exit {p.returncode}:\n{p.stderr[-3000:]}")
    compare(os.path.join(work, "one_ga2_2x1"), tcp[:-5], "2 ranks over TCP (hostfile) vs 1 x 2")


def main():
    require_mpi_build()
    work = work_dir("parity_random")
    print("random GQA model (5 layers), quickstart sample")
    check_parity(work, fresh_data(work, n_layers=5))
    work = work_dir("parity")
    data = shared_data(work)
    if data:
        print(f"tinystories-656k, PubMed sample: {data[0]}")
        check_parity(work, data)
    print("PASS")


if __name__ == "__main__":
    main()
