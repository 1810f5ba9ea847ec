#!/usr/bin/env python3
"""The scaling model of data-parallel training on paper (docs/training.md): step time of the
SmolLM2-135M, 1B (TinyLlama-1.1B) and 7B (Llama-2-7B) shapes against the time of medtune's
gradient reduction (chain + broadcast, train/dist.c) on 8, 32 and 128 machines at 10 and
25 Gb/s, and the parallel efficiency step / (step + reduction).

Compute: the measured SmolLM2 rate of one machine (--rate tok/s, bench/bench_train.sh), scaled
to the other shapes by training FLOPs per token with a frozen base: 4 x (linear weights +
lm_head) for forward + input gradients, + 12 x layers x seq x hidden for attention.
Reduction, grad_accum 1: the chain sends the gradient G once per rank, pipelined in 1 MiB
chunks (G/B + (N-1) chunks/B), the broadcast about 2 G/B (a pipelined tree), plus a message
latency per hop: T = 3 G/B + (N-1) c/B + N lat. Nothing overlaps with compute at
grad_accum 1 (with grad_accum A, rounds 1..A-1 overlap the next micro-batch)."""
import argparse

SHAPES = {  # hidden, intermediate, layers, heads, kv heads, vocab
    "SmolLM2-135M": (576, 1536, 30, 9, 3, 49152),
    "1B (TinyLlama-1.1B)": (2048, 5632, 22, 32, 4, 32000),
    "7B (Llama-2-7B)": (4096, 11008, 32, 32, 32, 32000),
}


def lora_params(shape, r):
    C, F, L, H, KV, V = shape
    D = C // H
    ins_outs = [(C, C), (C, KV * D), (C, KV * D), (C, C), (C, F), (C, F), (F, C)]
    return L * sum(r * (i + o) for i, o in ins_outs)


def flops_per_token(shape, T):
    C, F, L, H, KV, V = shape
    D = C // H
    linear = L * (2 * C * C + 2 * C * KV * D + 3 * C * F)
    return 4 * (linear + V * C) + 12 * L * T * C


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=300.0,
                    help="SmolLM2-135M training tok/s of one machine")
    ap.add_argument("--tokens", type=int, default=2048,
                    help="tokens per rank per step (micro_batch x seq_len x grad_accum)")
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--r", type=int, default=16)
    ap.add_argument("--latency-us", type=float, default=30.0)
    a = ap.parse_args()
    chunk = 4 * (1 << 18)
    base = flops_per_token(SHAPES["SmolLM2-135M"], a.seq)
    print(f"one machine: {a.rate:.0f} tok/s on SmolLM2; {a.tokens} tokens per rank per step; "
          f"LoRA r={a.r} on all 7 projections, fp32 gradients\n")
    print("| shape | gradient | step | machines | reduction 10 Gb/s | eff. | "
          "reduction 25 Gb/s | eff. |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, shape in SHAPES.items():
        G = 4 * lora_params(shape, a.r)
        rate = a.rate * base / flops_per_token(shape, a.seq)
        step = a.tokens / rate
        for n in (8, 32, 128):
            cells = []
            for gbps in (10, 25):
                B = gbps * 1e9 / 8
                t = 3 * G / B + (n - 1) * chunk / B + n * a.latency_us * 1e-6
                cells += [f"{1e3 * t:.0f} ms", f"{step / (step + t):.1%}"]
            print(f"| {name} | {G / 1e6:.0f} MB | {step:.1f} s | {n} | " + " | ".join(cells)
                  + " |")


if __name__ == "__main__":
    main()
