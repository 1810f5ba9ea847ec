#!/usr/bin/env python3
"""Attention alone against PyTorch: medtune's tiled attention (model/attention.c) on start
arrays the model tests do not reach: random lower bounds (a sliding window of random width per
row, inside documents), many short packed documents, and a 2048-token causal row.

usage: check_attention.py      (ctest parity_attention; MEDTUNE_TEST_BIN is set by ctest)

For each case this writes q, k, v, start, dout and the float64 reference (softmax attention
with an explicit mask, autograd for dq, dk, dv of sum(out * dout), logsumexp of the masked
scores) to $MEDTUNE_TEST_BIN/attention/<case>.safetensors, then runs test_attention on it.
"""
import os
import subprocess
import sys

import torch
from safetensors.torch import save_file

SKIP = 77


def starts(T, docs, window, gen):
    """[T] int: max(document start, t - w + 1), w random in [1, window] per row (0 = no window)."""
    out = torch.zeros(T, dtype=torch.int64)
    first = 0
    bounds = set()
    pos = 0
    for n in docs:
        bounds.add(pos)
        pos += n
    for t in range(T):
        if t in bounds:
            first = t
        lo = first
        if window:
            w = int(torch.randint(1, window + 1, (1,), generator=gen))
            lo = max(lo, t - w + 1)
        out[t] = lo
    return out


def reference(q, k, v, start, dout, H, KV):
    """float64 attention of [B, T, H, D] q and [B, T, KV, D] k, v; query t sees [start, t]."""
    q, k, v, dout = (x.double().requires_grad_(x is not dout) for x in (q, k, v, dout))
    B, T, _, D = q.shape
    kk = k.repeat_interleave(H // KV, dim=2)
    vv = v.repeat_interleave(H // KV, dim=2)
    s = torch.einsum("bthd,bshd->bhts", q, kk) / D ** 0.5
    idx = torch.arange(T)
    mask = (idx[None, :] <= idx[:, None])[None] & (idx[None, None, :] >= start[:, :, None])
    s = s.masked_fill(~mask[:, None], float("-inf"))
    lse = torch.logsumexp(s, dim=-1)  # [B, H, T]
    out = torch.einsum("bhts,bshd->bthd", torch.softmax(s, dim=-1), vv)
    (out * dout).sum().backward()
    return out.detach(), lse.detach(), q.grad, k.grad, v.grad


CASES = {
    # random lower bounds: each row's window width drawn from [1, 200], two documents per row
    "window": dict(B=2, T=300, H=6, KV=2, D=16, docs=[[120, 180], [300]], window=200),
    # 60-odd short documents in one row of 1024
    "many_docs": dict(B=1, T=1024, H=4, KV=2, D=32, docs=None, window=0),
    # one causal row of 2048 tokens at SmolLM2's head size
    "long2048": dict(B=1, T=2048, H=3, KV=1, D=64, docs=[[2048]], window=0),
}


def main():
    bin_dir = os.environ.get("MEDTUNE_TEST_BIN")
    if not bin_dir:
        print("FAIL: MEDTUNE_TEST_BIN is not set", file=sys.stderr)
        return 1
    checker = os.path.join(bin_dir, "test_attention")
    if not os.path.exists(checker):
        print(f"SKIP: {checker} is not built")
        return SKIP
    work = os.path.join(bin_dir, "attention")
    os.makedirs(work, exist_ok=True)
    torch.set_num_threads(2)
    for name, c in CASES.items():
        gen = torch.Generator().manual_seed(sum(map(ord, name)))
        B, T, H, KV, D = c["B"], c["T"], c["H"], c["KV"], c["D"]
        docs = c["docs"]
        if docs is None:
            docs = []
            for _ in range(B):
                row, left = [], T
                while left > 0:
                    n = min(left, int(torch.randint(1, 33, (1,), generator=gen)))
                    row.append(n)
                    left -= n
                docs.append(row)
        start = torch.stack([starts(T, docs[b], c["window"], gen) for b in range(B)])
        q = torch.randn(B, T, H, D, generator=gen)
        k = torch.randn(B, T, KV, D, generator=gen)
        v = torch.randn(B, T, KV, D, generator=gen)
        dout = torch.randn(B, T, H, D, generator=gen)
        out, lse, dq, dk, dv = reference(q, k, v, start, dout, H, KV)
        tensors = {"q": q, "k": k, "v": v, "dout": dout, "out": out, "lse": lse, "dq": dq,
                   "dk": dk, "dv": dv}
        tensors = {n: t.float().reshape(B * T, -1).contiguous() if n != "lse"
                   else t.float().contiguous() for n, t in tensors.items()}
        tensors["start"] = start.to(torch.int32).contiguous()
        path = os.path.join(work, name + ".safetensors")
        save_file(tensors, path, metadata={"B": str(B), "T": str(T), "H": str(H),
                                           "KV": str(KV), "D": str(D)})
        print(f"{name}: B={B} T={T} H={H} KV={KV} D={D}, "
              f"{sum(len(r) for r in docs)} documents, window {c['window'] or 'none'}")
        sys.stdout.flush()
        rc = subprocess.call([checker, path])
        if rc != 0:
            return rc
    return 0


if __name__ == "__main__":
    sys.exit(main())
