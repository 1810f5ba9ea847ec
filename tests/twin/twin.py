#!/usr/bin/env python3
"""The PyTorch twin: one parity case -> one debug safetensors file for tests/test_parity.c.

usage: twin.py --model PATH --case CASE.json --out DEBUG.safetensors [--threads N]

Builds the batch (random ids or a tokenized text, optional masked prefix, optional document
attention), a seeded non-zero LoRA adapter, and records logits, loss, LoRA gradients and the
losses of `adam.steps` AdamW steps on that batch. Layout: docs/twin.md.
"""
import argparse
import json
import math
import os
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from llama import TARGETS, Twin, lora_init, next_token_loss  # noqa: E402
from model_io import ModelError, load_model, load_tokenizer  # noqa: E402

CASE_KEYS = {"seed", "batch", "seq_len", "text_file", "mask_prefix", "doc_attention",
             "doc_lengths", "lora", "adam", "precision",
             # read by check_parity.py only
             "model", "pubmedqa_pmid", "description"}
LORA_DEFAULTS = {"r": 4, "alpha": 8, "use_rslora": False, "dropout": 0.0, "targets": list(TARGETS)}
ADAM_DEFAULTS = {"steps": 10, "lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
                 "weight_decay": 0.01}


PRECISIONS = {"float32": torch.float32, "float64": torch.float64}


class CaseError(Exception):
    pass


def resolve_case(case, path):
    unknown = set(case) - CASE_KEYS
    if unknown:
        raise CaseError(f"{path}: unknown key '{sorted(unknown)[0]}'")
    out = {"seed": 1, "batch": 1, "seq_len": 16, "text_file": None, "mask_prefix": 0,
           "doc_attention": "causal", "doc_lengths": None, "precision": "float32"}
    out.update({k: v for k, v in case.items() if k not in ("lora", "adam")})
    for key, defaults in (("lora", LORA_DEFAULTS), ("adam", ADAM_DEFAULTS)):
        sub = dict(defaults)
        extra = set(case.get(key, {})) - set(defaults)
        if extra:
            raise CaseError(f"{path}: unknown key '{key}.{sorted(extra)[0]}'")
        sub.update(case.get(key, {}))
        out[key] = sub
    lora = out["lora"]
    bad = [t for t in lora["targets"] if t not in TARGETS]
    if bad or not lora["targets"]:
        raise CaseError(f"{path}: lora.targets: bad target {bad[:1]}")
    if lora["dropout"] != 0.0:
        raise CaseError(f"{path}: lora.dropout must be 0 for a deterministic parity case")
    r = lora["r"]
    lora["scale"] = lora["alpha"] / (math.sqrt(r) if lora["use_rslora"] else r)
    if out["precision"] not in PRECISIONS:
        raise CaseError(f"{path}: precision must be float32 or float64")
    if out["doc_attention"] not in ("causal", "document"):
        raise CaseError(f"{path}: doc_attention must be causal or document")
    B, T = out["batch"], out["seq_len"]
    if out["doc_attention"] == "document":
        dl = out["doc_lengths"]
        if not isinstance(dl, list) or len(dl) != B or any(sum(row) != T for row in dl):
            raise CaseError(f"{path}: doc_lengths must give {B} rows of lengths summing to {T}")
    if not 0 <= out["mask_prefix"] < T:
        raise CaseError(f"{path}: mask_prefix must be in [0, seq_len)")
    return out


def window_tokens(case, cfg, model_path):
    """[B, T+1] ids: seeded random ids, or the first B*(T+1) tokens of case.text_file."""
    B, T = case["batch"], case["seq_len"]
    n = B * (T + 1)
    if case["text_file"] is None:
        g = torch.Generator().manual_seed(case["seed"])
        return torch.randint(0, cfg["vocab_size"], (B, T + 1), generator=g), None
    tok, add_bos, bos = load_tokenizer(model_path, cfg)
    with open(case["text_file"], encoding="utf-8") as fp:
        text = fp.read()
    ids = tok.encode(text, add_special_tokens=False).ids
    if add_bos and bos is not None:
        ids = [int(bos)] + ids
    if len(ids) < n:
        raise CaseError(f"{case['text_file']}: {len(ids)} tokens, the case needs {n}")
    info = {"text_tokens": len(ids), "add_bos": add_bos}
    return torch.tensor(ids[:n], dtype=torch.int64).view(B, T + 1), info


def build_batch(case, cfg, model_path):
    """tokens, targets (-1 masked), positions, doc_ids, all [B, T] int64."""
    B, T = case["batch"], case["seq_len"]
    if cfg.get("sliding_window") and T > cfg["sliding_window"]:
        raise CaseError(f"seq_len {T} exceeds the model's sliding_window {cfg['sliding_window']}")
    w, info = window_tokens(case, cfg, model_path)
    tokens = w[:, :T].clone()
    targets = w[:, 1:].clone()
    positions = torch.arange(T).repeat(B, 1)
    doc_ids = torch.zeros(B, T, dtype=torch.int64)
    if case["doc_attention"] == "document":
        for b, lengths in enumerate(case["doc_lengths"]):
            start = 0
            for d, n in enumerate(lengths):
                positions[b, start:start + n] = torch.arange(n)
                doc_ids[b, start:start + n] = d
                if d + 1 < len(lengths):
                    targets[b, start + n - 1] = -1  # would predict the next document's first token
                start += n
    targets[:, :case["mask_prefix"]] = -1
    if (targets >= 0).sum() == 0:
        raise CaseError("the case masks every target")
    return tokens, targets, positions, doc_ids, info


def run_case(cfg, weights, case, tokens, targets, positions, doc_ids):
    """Returns dict of the debug tensors (without the batch). Consumes `weights`."""
    lc, ac = case["lora"], case["adam"]
    dtype = PRECISIONS[case["precision"]]
    lora = lora_init(cfg, lc["r"], lc["targets"], case["seed"], dtype=dtype)
    init = {k: v.detach().to(torch.float32, copy=True) for k, v in lora.items()}
    model = Twin(cfg, weights, lora, lc["scale"], dtype=dtype)
    weights.clear()  # the model holds its own (possibly float64) copies
    params = list(lora.values())
    opt = torch.optim.AdamW(params, lr=ac["lr"], betas=(ac["beta1"], ac["beta2"]),
                            eps=ac["eps"], weight_decay=ac["weight_decay"])
    losses = []
    out = {}
    for step in range(max(ac["steps"], 1)):
        opt.zero_grad(set_to_none=True)
        logits = model.forward(tokens, positions, doc_ids)
        loss = next_token_loss(logits, targets)
        loss.backward()
        if step == 0:
            out["logits"] = logits.detach().float().contiguous()
            out["loss"] = loss.detach().float().reshape(1)
            for k, v in lora.items():
                out["grad." + k] = v.grad.detach().to(torch.float32, copy=True)
        del logits
        losses.append(loss.item())
        if step < ac["steps"]:
            opt.step()
    out["adam_losses"] = torch.tensor(losses[:ac["steps"]], dtype=torch.float32)
    for k, v in lora.items():
        out["init." + k] = init[k]
        out["final." + k] = v.detach().to(torch.float32, copy=True)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--model", required=True)
    ap.add_argument("--case", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        with open(args.case) as fp:
            case = resolve_case(json.load(fp), args.case)
        cfg, weights = load_model(args.model)
        tokens, targets, positions, doc_ids, info = build_batch(case, cfg, args.model)
    except (CaseError, ModelError, OSError, ValueError, KeyError) as e:
        print(f"twin: error: {e}", file=sys.stderr)
        return 1
    out = run_case(cfg, weights, case, tokens, targets, positions, doc_ids)
    i32 = torch.int32
    out.update({"tokens": tokens.to(i32), "targets": targets.to(i32),
                "positions": positions.to(i32), "doc_ids": doc_ids.to(i32)})
    if info:
        case["text"] = info
    meta = {"case": json.dumps(case, sort_keys=True), "model": os.path.abspath(args.model)}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    save_file({k: v.contiguous() for k, v in out.items()}, tmp, metadata=meta)
    os.replace(tmp, args.out)
    print(json.dumps({"out": args.out, "loss": out["loss"].item(),
                      "final_loss": out["adam_losses"][-1].item() if len(out["adam_losses"]) else None}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
