#!/usr/bin/env python3
"""Checks the PyTorch twin by itself, before anything is compared against it.

1. reference logits: the twin's logits on the real tinystories-656k / stories260K equal the
   logits_pos0..2 in their REFERENCE_greedy.json (made by an independent stdlib forward);
2. scalar forward: a float64 loop-by-loop implementation of the formulas (per token, per head,
   RoPE pair by pair, llama3 bands piecewise, LoRA merged into W) gives the twin's logits;
3. gradcheck: torch.autograd.gradcheck in float64 on the loss w.r.t. the LoRA tensors;
   and fp32 gradients agree with float64 ones far inside the parity tolerance;
4. packing: with document attention, a packed row equals each document run alone;
5. GGUF: a random model written as GGUF with llama.cpp's Q/K permutation loads back equal to
   the HF original; on the real SmolLM2 GGUF the un-permuted weights predict a PubMed abstract
   better than the raw ones, and the GGUF tokenizer round-trips the abstract;
6. twin.py end to end: the debug file has every tensor with the documented dtype and shape,
   and `precision: float64` starts from the same fp32 adapter and lands within fp32 noise.
Parts needing $MEDTUNE_SHARED or the SmolLM2 GGUF are skipped with a message when absent.
"""
import json
import math
import os
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from llama import TARGETS, Twin, lora_init, lora_name, next_token_loss  # noqa: E402
from make_model import make_config, make_weights, write_model  # noqa: E402
from model_io import HF_PROJ, config_from_hf, load_model, load_tokenizer, permute_qk  # noqa: E402

FAILURES = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        FAILURES.append(what)


def skip(what):
    print("skip " + what)


def spec(**over):
    s = {"arch": "llama", "hidden_size": 24, "intermediate_size": 40, "n_layers": 2, "n_heads": 4,
         "n_kv_heads": 2, "head_dim": 8, "vocab_size": 37, "tie": False, "rope_theta": 10000.0,
         "rope_scaling": None, "dtype": "F32", "seed": 5, "max_position_embeddings": 128}
    s.update(over)
    return s


def in_memory(s):
    """(cfg, fp32 weights) of a random spec, parsed through the same config reader as files."""
    cfg = config_from_hf(make_config(s))
    w = {k: v.float() for k, v in make_weights(s).items()}
    if cfg["tie"]:
        w["lm_head.weight"] = w["model.embed_tokens.weight"]
    return cfg, w


def batch(cfg, B, T, seed, doc_lengths=None):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, cfg["vocab_size"], (B, T + 1), generator=g)
    pos = torch.arange(T).repeat(B, 1)
    doc = torch.zeros(B, T, dtype=torch.int64)
    if doc_lengths:
        for b, lengths in enumerate(doc_lengths):
            s = 0
            for d, n in enumerate(lengths):
                pos[b, s:s + n] = torch.arange(n)
                doc[b, s:s + n] = d
                s += n
    return ids[:, :T], ids[:, 1:], pos, doc


# ---------------------------------------------------------------- 1. reference logits

def check_reference_logits():
    shared = os.environ.get("MEDTUNE_SHARED", os.path.join(HERE, "..", "..", "..", "shared"))
    for name in ("tinystories-656k", "stories260K"):
        path = os.path.join(shared, "models", name)
        ref_path = os.path.join(path, "REFERENCE_greedy.json")
        if not os.path.exists(ref_path):
            skip(f"reference logits of {name}: {ref_path} is absent")
            continue
        with open(ref_path) as fp:
            ref = json.load(fp)
        cfg, w = load_model(path)
        ids = ref["input_ids"] + ref["greedy_ids"][:2]
        T = len(ids)
        logits = Twin(cfg, w, {}, 1.0).forward(torch.tensor([ids]), torch.arange(T)[None],
                                               torch.zeros(1, T, dtype=torch.int64))
        diff = max((logits[0, i] - torch.tensor(ref[f"logits_pos{i}"])).abs().max().item()
                   for i in range(3))
        # The reference is rounded to 5 decimals.
        check(diff < 3e-5, f"{name}: logits at positions 0..2 vs REFERENCE_greedy.json, max |diff| {diff:.2e}")


# ---------------------------------------------------------------- 2. scalar forward

def scalar_inv_freq(cfg):
    D, theta = cfg["head_dim"], cfg["rope_theta"]
    out = []
    sc = cfg["rope_scaling"]
    for j in range(D // 2):
        f = theta ** (-2.0 * j / D)
        if sc and sc["type"] == "llama3":
            wavelen = 2 * math.pi / f
            old = sc["original_max_position_embeddings"]
            if wavelen < old / sc["high_freq_factor"]:
                pass  # high frequency: unchanged
            elif wavelen > old / sc["low_freq_factor"]:
                f = f / sc["factor"]
            else:
                t = (old / wavelen - sc["low_freq_factor"]) / (sc["high_freq_factor"] - sc["low_freq_factor"])
                f = (1 - t) * f / sc["factor"] + t * f
        out.append(f)
    return out


def scalar_forward(cfg, w, lora, scale, tokens, positions, doc_ids):
    """Llama/Qwen2 written out one token, one head, one rotation pair at a time, in float64."""
    W = {k: v.double().numpy() for k, v in w.items()}
    for i in range(cfg["n_layers"]):
        for t in TARGETS:
            a = lora.get(lora_name(i, t, "A"))
            if a is not None:
                b = lora[lora_name(i, t, "B")]
                key = f"model.layers.{i}.{HF_PROJ[t]}.weight"
                W[key] = W[key] + scale * (b.double().detach().numpy() @ a.double().detach().numpy())
    H, KV, D = cfg["n_heads"], cfg["n_kv_heads"], cfg["head_dim"]
    eps = cfg["rms_norm_eps"]
    inv = scalar_inv_freq(cfg)
    sc = cfg["rope_scaling"]
    pos_div = sc["factor"] if sc and sc["type"] == "linear" else 1.0

    def norm(x, g):
        return g * x / math.sqrt(sum(v * v for v in x) / len(x) + eps)

    def lin(name, x):
        y = W[name + ".weight"] @ x
        return y + W[name + ".bias"] if name + ".bias" in W else y

    def rope(v, p):
        out = v.copy()
        for j in range(D // 2):
            a = p / pos_div * inv[j]
            c, s = math.cos(a), math.sin(a)
            out[j] = v[j] * c - v[j + D // 2] * s
            out[j + D // 2] = v[j + D // 2] * c + v[j] * s
        return out

    B, T = tokens.shape
    logits = np.zeros((B, T, cfg["vocab_size"]))
    for b in range(B):
        xs = [W["model.embed_tokens.weight"][int(tokens[b, t])].copy() for t in range(T)]
        for i in range(cfg["n_layers"]):
            p = f"model.layers.{i}."
            hs = [norm(x, W[p + "input_layernorm.weight"]) for x in xs]
            qs = [lin(p + "self_attn.q_proj", h) for h in hs]
            ks = [lin(p + "self_attn.k_proj", h) for h in hs]
            vs = [lin(p + "self_attn.v_proj", h) for h in hs]
            att = []
            for t in range(T):
                out = np.zeros(H * D)
                for h in range(H):
                    kvh = h // (H // KV)
                    q = rope(qs[t][h * D:(h + 1) * D], int(positions[b, t]))
                    keys = [u for u in range(t + 1) if doc_ids[b, u] == doc_ids[b, t]]
                    sc_ = [float(q @ rope(ks[u][kvh * D:(kvh + 1) * D], int(positions[b, u]))) / math.sqrt(D)
                           for u in keys]
                    m = max(sc_)
                    e = [math.exp(s - m) for s in sc_]
                    z = sum(e)
                    for u, ev in zip(keys, e):
                        out[h * D:(h + 1) * D] += ev / z * vs[u][kvh * D:(kvh + 1) * D]
                att.append(out)
            xs = [x + lin(p + "self_attn.o_proj", a) for x, a in zip(xs, att)]
            new = []
            for x in xs:
                h = norm(x, W[p + "post_attention_layernorm.weight"])
                g = lin(p + "mlp.gate_proj", h)
                u = lin(p + "mlp.up_proj", h)
                new.append(x + lin(p + "mlp.down_proj", g / (1 + np.exp(-g)) * u))
            xs = new
        for t in range(T):
            logits[b, t] = W["lm_head.weight"] @ norm(xs[t], W["model.norm.weight"])
    return logits


def check_scalar_forward():
    variants = {
        "llama GQA, untied": (spec(), None),
        "llama3 rope scaling": (spec(head_dim=16, n_heads=2, n_kv_heads=1, hidden_size=20, rope_theta=500000.0,
                                     rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                   "high_freq_factor": 4.0, "original_max_position_embeddings": 32}), None),
        "linear rope (rope_parameters)": (spec(rope_scaling={"rope_type": "linear", "factor": 3.0},
                                               rope_style="rope_parameters"), None),
        "qwen2 biases, tied, head_dim != hidden/heads": (spec(arch="qwen2", tie=True, head_dim=10, n_kv_heads=1), None),
        "document attention": (spec(), [[4, 9], [13]]),
    }
    for what, (s, docs) in variants.items():
        cfg, w = in_memory(s)
        T = 13
        tokens, _, pos, doc = batch(cfg, 2, T, seed=3, doc_lengths=docs)
        lora = lora_init(cfg, 3, TARGETS, seed=4, b_std=0.2, dtype=torch.float64)
        got = Twin(cfg, w, lora, 1.5, dtype=torch.float64).forward(tokens, pos, doc).detach().numpy()
        want = scalar_forward(cfg, w, lora, 1.5, tokens, pos, doc)
        diff = np.abs(got - want).max()
        check(diff < 2e-5, f"scalar forward, {what}: max |diff| {diff:.2e} (logit scale {np.abs(want).max():.1f})")


# ---------------------------------------------------------------- 3. gradients

def check_gradcheck():
    cfg, w = in_memory(spec(arch="qwen2", hidden_size=8, intermediate_size=12, n_heads=2, n_kv_heads=1,
                            head_dim=6, vocab_size=11, n_layers=2))
    tokens, targets, pos, doc = batch(cfg, 2, 5, seed=1, doc_lengths=[[2, 3], [5]])
    targets[0, 1] = -1
    targets[1, 0] = -1
    lora = lora_init(cfg, 2, TARGETS, seed=2, b_std=0.3, dtype=torch.float64)
    names = list(lora)
    model = Twin(cfg, w, lora, 2.0, dtype=torch.float64)

    def f(*params):
        model.lora = dict(zip(names, params))
        return next_token_loss(model.forward(tokens, pos, doc), targets)

    ok = torch.autograd.gradcheck(f, tuple(lora.values()), eps=1e-6, atol=1e-7, rtol=1e-5, raise_exception=False)
    check(ok, f"gradcheck float64 of the loss w.r.t. {len(names)} LoRA tensors (qwen2, GQA, documents, masks)")

    # fp32 autograd vs float64: the error of the reference itself must sit far below 1e-3.
    cfg, w = in_memory(spec(hidden_size=52, intermediate_size=100, vocab_size=301, head_dim=14, n_layers=3))
    tokens, targets, pos, doc = batch(cfg, 2, 16, seed=7)
    worst = 0.0
    grads = {}
    for dt in (torch.float32, torch.float64):
        lora = lora_init(cfg, 4, TARGETS, seed=8, dtype=dt)
        next_token_loss(Twin(cfg, w, lora, 2.0, dtype=dt).forward(tokens, pos, doc), targets).backward()
        grads[dt] = {k: v.grad.double() for k, v in lora.items()}
    for k, g64 in grads[torch.float64].items():
        rel = ((grads[torch.float32][k] - g64).norm() / g64.norm()).item()
        worst = max(worst, rel)
    check(worst < 1e-5, f"fp32 LoRA gradients vs float64: worst relative error {worst:.2e}")


# ---------------------------------------------------------------- 4. packing

def check_packing():
    cfg, w = in_memory(spec(tie=True))
    T = 14
    lengths = [3, 6, 5]
    tokens, targets, pos, doc = batch(cfg, 1, T, seed=9, doc_lengths=[lengths])
    lora = lora_init(cfg, 4, TARGETS, seed=3)
    model = Twin(cfg, w, lora, 2.0)
    packed = model.forward(tokens, pos, doc)[0]
    worst = 0.0
    s = 0
    for n in lengths:
        alone = model.forward(tokens[:, s:s + n], torch.arange(n)[None],
                              torch.zeros(1, n, dtype=torch.int64))[0]
        worst = max(worst, (alone - packed[s:s + n]).abs().max().item())
        s += n
    check(worst < 1e-5, f"packed documents equal each document alone: max |diff| {worst:.2e}")


# ---------------------------------------------------------------- 5. GGUF

def write_gguf(path, s):
    import gguf
    cfg, w = in_memory(s)
    wr = gguf.GGUFWriter(path, "llama")
    wr.add_block_count(cfg["n_layers"])
    wr.add_context_length(s["max_position_embeddings"])
    wr.add_embedding_length(cfg["hidden_size"])
    wr.add_feed_forward_length(cfg["intermediate_size"])
    wr.add_head_count(cfg["n_heads"])
    wr.add_head_count_kv(cfg["n_kv_heads"])
    wr.add_rope_freq_base(cfg["rope_theta"])
    wr.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    wr.add_vocab_size(cfg["vocab_size"])
    wr.add_rope_dimension_count(cfg["head_dim"])
    wr.add_key_length(cfg["head_dim"])
    wr.add_value_length(cfg["head_dim"])
    gg = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}
    wr.add_tensor("token_embd.weight", w["model.embed_tokens.weight"].numpy())
    for i in range(cfg["n_layers"]):
        p = f"model.layers.{i}."
        for hf, g in gg.items():
            wr.add_tensor(f"blk.{i}.{g}.weight", w[p + hf + ".weight"].numpy())
        for proj, g in (("q_proj", "attn_q"), ("k_proj", "attn_k"), ("v_proj", "attn_v"),
                        ("o_proj", "attn_output"), ("gate_proj", "ffn_gate"), ("up_proj", "ffn_up"),
                        ("down_proj", "ffn_down")):
            t = w[p + HF_PROJ[proj] + ".weight"].numpy()
            if proj == "q_proj":
                t = permute_qk(t, cfg["n_heads"])
            elif proj == "k_proj":
                t = permute_qk(t, cfg["n_kv_heads"])
            wr.add_tensor(f"blk.{i}.{g}.weight", np.ascontiguousarray(t))
    wr.add_tensor("output_norm.weight", w["model.norm.weight"].numpy())
    wr.add_tensor("output.weight", w["lm_head.weight"].numpy())
    wr.write_header_to_file()
    wr.write_kv_data_to_file()
    wr.write_tensors_to_file()
    wr.close()
    return w


def check_gguf():
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.gguf")
        want = write_gguf(path, spec(n_heads=6, n_kv_heads=2, head_dim=8))
        cfg, got = load_model(path)
        bad = [k for k in want if not torch.equal(want[k], got[k])]
        check(not bad and cfg["n_kv_heads"] == 2 and cfg["head_dim"] == 8,
              f"GGUF Q/K permutation undone: {len(want) - len(bad)}/{len(want)} tensors equal the HF original")

    gguf_path = os.path.join(os.environ.get("MEDTUNE_CACHE", os.path.join(HERE, "..", "..", ".cache")),
                             "SmolLM2-135M-Instruct.Q4_1.gguf")
    src = os.path.join(os.environ.get("MEDTUNE_SHARED", os.path.join(HERE, "..", "..", "..", "shared")),
                       "data", "pubmedqa", "ori_pqal.json")
    if not (os.path.exists(gguf_path) and os.path.exists(src)):
        skip(f"SmolLM2 GGUF checks: {gguf_path} or {src} is absent")
        return
    with open(src, encoding="utf-8") as fp:
        text = " ".join(json.load(fp)["23831910"]["CONTEXTS"])
    cfg, w = load_model(gguf_path)
    tok, _, _ = load_tokenizer(gguf_path, cfg)
    ids = tok.encode(text, add_special_tokens=False).ids
    check(tok.decode(ids) == text, f"SmolLM2 GGUF tokenizer: decode(encode(abstract)) == abstract ({len(ids)} tokens)")
    T = 128
    tokens = torch.tensor([ids[:T]])
    targets = torch.tensor([ids[1:T + 1]])
    pos = torch.arange(T)[None]
    doc = torch.zeros(1, T, dtype=torch.int64)
    loss = next_token_loss(Twin(cfg, w, {}, 1.0).forward(tokens, pos, doc), targets).item()
    for i in range(cfg["n_layers"]):
        for proj, heads in (("q_proj", cfg["n_heads"]), ("k_proj", cfg["n_kv_heads"])):
            k = f"model.layers.{i}.{HF_PROJ[proj]}.weight"
            w[k] = permute_qk(w[k], heads)
    raw = next_token_loss(Twin(cfg, w, {}, 1.0).forward(tokens, pos, doc), targets).item()
    check(loss < raw - 0.5, f"SmolLM2 GGUF: loss on a PubMed abstract {loss:.3f} with Q/K un-permuted, {raw:.3f} without")


# ---------------------------------------------------------------- 6. twin.py end to end

def check_twin_file():
    import twin
    from safetensors import safe_open
    s = spec(tie=True)
    case = {"seed": 3, "batch": 2, "seq_len": 9, "mask_prefix": 2, "doc_attention": "document",
            "doc_lengths": [[4, 5], [9]], "lora": {"r": 2, "alpha": 4, "targets": ["q_proj", "down_proj"]},
            "adam": {"steps": 3}}
    with tempfile.TemporaryDirectory() as tmp:
        write_model(s, os.path.join(tmp, "m"))
        with open(os.path.join(tmp, "case.json"), "w") as fp:
            json.dump(case, fp)
        out = os.path.join(tmp, "d.safetensors")
        rc = twin.main(["--model", os.path.join(tmp, "m"), "--case", os.path.join(tmp, "case.json"), "--out", out])
        check(rc == 0, "twin.py runs a case")
        f = safe_open(out, "pt")
        meta = f.metadata()
        n_lora = s["n_layers"] * 2 * 2
        want = {"tokens": (torch.int32, (2, 9)), "targets": (torch.int32, (2, 9)),
                "positions": (torch.int32, (2, 9)), "doc_ids": (torch.int32, (2, 9)),
                "logits": (torch.float32, (2, 9, s["vocab_size"])), "loss": (torch.float32, (1,)),
                "adam_losses": (torch.float32, (3,))}
        bad = [k for k, (dt, sh) in want.items()
               if k not in f.keys() or f.get_tensor(k).dtype != dt or tuple(f.get_tensor(k).shape) != sh]
        lora_keys = [k for k in f.keys() if k.split(".", 1)[0] in ("init", "grad", "final")]
        check(not bad and len(lora_keys) == 3 * n_lora,
              f"debug file layout: bad {bad}, {len(lora_keys)} LoRA tensors (want {3 * n_lora})")
        resolved = json.loads(meta["case"])
        targets = f.get_tensor("targets")
        check(resolved["lora"]["scale"] == 2.0 and meta["model"].endswith("m")
              and targets[0, :2].eq(-1).all() and targets[0, 3] == -1 and targets[0, 8] != -1
              and f.get_tensor("positions")[0].tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 4]
              and abs(f.get_tensor("adam_losses")[0].item() - f.get_tensor("loss").item()) == 0,
              "debug file: metadata, masks, positions, adam_losses[0] == loss")

        # precision float64: same fp32 initial adapter, results within fp32 noise of float32.
        case["precision"] = "float64"
        with open(os.path.join(tmp, "case64.json"), "w") as fp:
            json.dump(case, fp)
        out64 = os.path.join(tmp, "d64.safetensors")
        rc = twin.main(["--model", os.path.join(tmp, "m"), "--case", os.path.join(tmp, "case64.json"), "--out", out64])
        g = safe_open(out64, "pt")
        same_init = all(torch.equal(f.get_tensor(k), g.get_tensor(k)) for k in lora_keys if k.startswith("init."))
        worst = max((f.get_tensor(k) - g.get_tensor(k)).abs().max().item() / (g.get_tensor(k).abs().max().item() + 1e-30)
                    for k in f.keys() if k.split(".", 1)[0] in ("grad", "final") or k == "logits")
        check(rc == 0 and same_init and g.get_tensor("logits").dtype == torch.float32 and worst < 1e-5,
              f"precision float64: same fp32 initial adapter, worst difference to float32 {worst:.1e}")


def main():
    torch.set_num_threads(2)
    check_reference_logits()
    check_scalar_forward()
    check_gradcheck()
    check_packing()
    check_gguf()
    check_twin_file()
    if FAILURES:
        print(f"{len(FAILURES)} check(s) failed", file=sys.stderr)
        return 1
    print("all twin self-checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
