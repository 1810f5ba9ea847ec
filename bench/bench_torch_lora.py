#!/usr/bin/env python3
"""PyTorch side of the LoRA training benchmark: tokens/s and peak RSS as one JSON line.

A random-weight Llama of the given shape (default SmolLM2-135M: hidden 576, FFN 1536, 30 layers,
9 heads / 3 KV heads, head_dim 64, vocab 49152, tied), LoRA r=16 alpha=32 on all seven
projections, built with plain torch.nn modules (eager, fp32, the transformers Llama layout).
One step = forward + next-token loss + backward + grad-norm clip (1.0) + AdamW.
tok/s is B*T over the median step time after the warm-up steps.

usage: bench_torch_lora.py [--hidden 576] [--intermediate 1536] [--layers 30] [--heads 9]
       [--kv-heads 3] [--head-dim 64] [--vocab 49152] [--untied] [--batch 4] [--seq 256]
       [--steps 5] [--warmup 2] [--threads 2] [--rank 16] [--alpha 32]
Run it with LD_PRELOAD=libjemalloc.so.2 MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1 for the
"tuned" figures of /work/shared/bench/REFERENCE.md; the JSON line says which allocator ran.
"""
import argparse
import json
import math
import os
import resource
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class LoraLinear(nn.Module):
    def __init__(self, fan_in, fan_out, r, scale):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(fan_out, fan_in) * fan_in ** -0.5, requires_grad=False)
        self.lora_A = nn.Parameter(torch.empty(r, fan_in).uniform_(-fan_in ** -0.5, fan_in ** -0.5))
        self.lora_B = nn.Parameter(torch.zeros(fan_out, r))
        self.scale = scale

    def forward(self, x):
        return F.linear(x, self.weight) + self.scale * F.linear(F.linear(x, self.lora_A), self.lora_B)


class RMSNorm(nn.Module):
    def __init__(self, n, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n), requires_grad=False)
        self.eps = eps

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Block(nn.Module):
    def __init__(self, a, scale):
        super().__init__()
        C, F_, H, KV, D, r = a.hidden, a.intermediate, a.heads, a.kv_heads, a.head_dim, a.rank
        self.H, self.KV, self.D = H, KV, D
        self.norm1, self.norm2 = RMSNorm(C), RMSNorm(C)
        self.q = LoraLinear(C, H * D, r, scale)
        self.k = LoraLinear(C, KV * D, r, scale)
        self.v = LoraLinear(C, KV * D, r, scale)
        self.o = LoraLinear(H * D, C, r, scale)
        self.gate = LoraLinear(C, F_, r, scale)
        self.up = LoraLinear(C, F_, r, scale)
        self.down = LoraLinear(F_, C, r, scale)

    def forward(self, x, cos, sin, mask):
        B, T, _ = x.shape
        h = self.norm1(x)
        q = self.q(h).view(B, T, self.H, self.D).transpose(1, 2)
        k = self.k(h).view(B, T, self.KV, self.D).transpose(1, 2)
        v = self.v(h).view(B, T, self.KV, self.D).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(self.H // self.KV, dim=1)
        v = v.repeat_interleave(self.H // self.KV, dim=1)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(self.D) + mask
        att = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, T, -1)
        x = x + self.o(att)
        h = self.norm2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Model(nn.Module):
    def __init__(self, a):
        super().__init__()
        scale = a.alpha / a.rank
        self.embed = nn.Parameter(torch.randn(a.vocab, a.hidden) * a.hidden ** -0.5, requires_grad=False)
        self.blocks = nn.ModuleList(Block(a, scale) for _ in range(a.layers))
        self.norm = RMSNorm(a.hidden)
        self.lm_head = (self.embed if not a.untied else
                        nn.Parameter(torch.randn(a.vocab, a.hidden) * a.hidden ** -0.5, requires_grad=False))
        inv = 1.0 / (10000.0 ** (torch.arange(0, a.head_dim, 2).float() / a.head_dim))
        freqs = torch.arange(a.seq).float()[:, None] * inv
        emb = torch.cat((freqs, freqs), dim=-1)
        self.cos, self.sin = emb.cos(), emb.sin()
        self.mask = torch.full((a.seq, a.seq), float("-inf")).triu(1)

    def forward(self, tokens):
        x = self.embed[tokens]
        for b in self.blocks:
            x = b(x, self.cos, self.sin, self.mask)
        return F.linear(self.norm(x), self.lm_head)


def main():
    ap = argparse.ArgumentParser(description="PyTorch LoRA training benchmark")
    for name, default in (("hidden", 576), ("intermediate", 1536), ("layers", 30), ("heads", 9),
                          ("kv-heads", 3), ("head-dim", 64), ("vocab", 49152), ("batch", 4),
                          ("seq", 256), ("steps", 5), ("warmup", 2), ("threads", 2), ("rank", 16),
                          ("seed", 0)):
        ap.add_argument("--" + name, type=int, default=default)
    ap.add_argument("--alpha", type=float, default=32.0)
    ap.add_argument("--untied", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    model = Model(a)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)
    g = torch.Generator().manual_seed(a.seed)
    data = torch.randint(0, a.vocab, (a.batch, a.seq + 1), generator=g)
    inputs, targets = data[:, :-1], data[:, 1:]
    times = []
    loss = None
    for step in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        logits = model(inputs)
        loss = F.cross_entropy(logits.reshape(-1, a.vocab), targets.reshape(-1))
        del logits
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if step >= a.warmup:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({
        "impl": "torch", "torch": torch.__version__, "threads": a.threads,
        "allocator": "jemalloc" if "jemalloc" in os.environ.get("LD_PRELOAD", "") else "default",
        "shape": {"hidden": a.hidden, "intermediate": a.intermediate, "layers": a.layers,
                  "heads": a.heads, "kv_heads": a.kv_heads, "head_dim": a.head_dim,
                  "vocab": a.vocab, "tied": not a.untied},
        "lora": {"r": a.rank, "alpha": a.alpha, "targets": 7},
        "batch": a.batch, "seq": a.seq, "steps": a.steps, "warmup": a.warmup,
        "step_s_median": round(med, 4), "tok_per_s": round(a.batch * a.seq / med, 2),
        "peak_rss_gb": round(rss_kb * 1024 / 1e9, 3), "final_loss": round(loss.item(), 4),
    }))


if __name__ == "__main__":
    main()
