#!/usr/bin/env python3
"""Every command on one architecture, from its Hugging Face directory and from its GGUF file
(issue 13: info / prep / train / eval / generate / export / merge on qwen3, gemma3, phi3 and
gpt2 from both formats). The oracle tests prove the math against transformers; this one proves
the commands take each architecture end to end, on a fresh clone (no ../shared).

usage: check_cli_chain.py qwen3|gemma3|phi3|gpt2

A random small model written by transformers' save_pretrained (the configs of arch_cases.py /
arch2_oracle.py: qwen3 with q/k norms, gemma3 with sliding layers and the GGUF-expressible
scale, phi3 with LongRoPE and partial rotary, gpt2), a SentencePiece-style tokenizer trained on
the quickstart sample, and the same weights and vocabulary written with gguf-py as llama.cpp's
converter writes them. For each format, MODEL being the directory or the .gguf:
- `info MODEL --json` names the architecture;
- `prep` of the quickstart sample with MODEL's tokenizer;
- `train` (lora.targets all-linear, 4 steps, checkpoints every 2);
- `eval MODEL --shards` without and with the adapter: the adapter lowers the loss;
- `export` of the run as PEFT and as a GGUF LoRA adapter (general.architecture = the
  architecture's llama.cpp name);
- `merge` into a directory (HF base) or a .gguf file (GGUF base, --type f32): `eval` of the
  merged model gives the loss of MODEL + adapter within 1e-5, and greedy `generate` of the
  merged model the same text as MODEL + adapter.
For phi3 and gpt2 also: a run stopped after 2 steps and resumed (`--resume`, recompute switched
on) equals the run of 4 steps, losses as text and the adapter byte for byte.
Runs in the oracle venv (transformers writes the models); skips with the reason without it."""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from arch_lib import reexec_in_oracle  # noqa: E402

reexec_in_oracle()

import torch  # noqa: E402
import transformers  # noqa: E402

sys.path.insert(0, os.path.join(HERE, ".."))
from arch_cases import CASES  # noqa: E402
from arch_lib import run, tokenizer_dir, write_gguf  # noqa: E402
from fresh_lib import prep_sample  # noqa: E402
from testlib import fail, work_dir, write_json  # noqa: E402

torch.set_num_threads(2)
transformers.logging.set_verbosity_error()
SEQ = 32  # below gpt2's 40 positions; above phi3's original 16 (LongRoPE's long factors)
TOL_MERGED_LOSS = 1e-5
GGUF_ARCH = {"qwen3": "qwen3", "gemma3": "gemma3", "phi3": "phi3", "gpt2": "gpt2"}
RESUME = ("phi3", "gpt2")


def make_model(arch, work):
    """(HF directory, GGUF file) of a random model of the architecture."""
    d = os.path.join(work, "model")
    vocab = tokenizer_dir(d)
    torch.manual_seed(0)
    if arch in ("qwen3", "gemma3"):
        case = CASES["qwen3" if arch == "qwen3" else "gemma3_gguf"]
        cfg = getattr(transformers, case["config_class"])(vocab_size=vocab, **case["config"])
        model = getattr(transformers, case["model_class"])(cfg).float().eval()
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "norm" in name:
                    p.copy_(p + 0.3 * torch.randn_like(p))
    else:
        import arch2_oracle
        model, _, _ = (arch2_oracle.phi3_longrope if arch == "phi3" else arch2_oracle.gpt2_plain)()
        model.config.vocab_size = vocab
        model.resize_token_embeddings(vocab)
        model.config.bos_token_id, model.config.eos_token_id = 1, 2
        arch2_oracle.randomize(model, 7)
    model.save_pretrained(d, safe_serialization=True)
    model = type(model).from_pretrained(d, dtype=torch.float32).eval()
    path = os.path.join(work, "model.gguf")
    tok = os.path.join(d, "tokenizer.json")
    if arch in ("qwen3", "gemma3"):
        case = CASES["qwen3" if arch == "qwen3" else "gemma3_gguf"]
        write_gguf(path, model.state_dict(), model.config.to_dict(), case["gguf"], tok)
    else:
        import arch2_oracle
        arch2_oracle.write_gguf(model, path, tokenizer_json=tok)
    return d, path


def cli_json(args):
    p = run(args + ["--json"])
    try:
        return json.loads(p.stdout)
    except json.JSONDecodeError:
        fail(f"medtune {' '.join(args)} --json printed no JSON object: {p.stdout[-500:]!r}")


def train_config(path, model, shards, out, steps, recompute=False):
    write_json(path, {"model": model, "data": {"train": shards},
                      "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "targets": "all-linear"},
                      "optim": {"lr": 0.02}, "schedule": {"decay": "constant"},
                      "batch": {"micro_batch": 2, "seq_len": SEQ},
                      "steps": steps, "save_every": 2, "seed": 5, "threads": 2,
                      "recompute": recompute, "out_dir": out})
    return path


def loss_lines(run_dir):
    """step -> the exact text of its "loss" field (the same double prints the same text)."""
    out = {}
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            d = json.loads(line)
            if "loss" in d:
                out[d["step"]] = [p for p in line.strip("{}\n").split(", ")
                                  if p.startswith('"loss"')]
    return out


def check_resume(work, model, shards, straight):
    """2 steps, then --resume to 4 with recompute on: the run of 4 steps, bit for bit. (A
    constant learning rate, so that the run's length, which a resume may change, is not part of
    the schedule.)"""
    out = os.path.join(work, "run_resumed")
    conf = train_config(os.path.join(work, "resumed.json"), model, shards, out, 2)
    run(["train", conf])
    run(["train", conf, "--resume", "--set", "steps=4", "--set", "recompute=true"])
    a, b = loss_lines(straight), loss_lines(out)
    if a != b:
        fail(f"resumed run's losses differ from the straight run's:\n{a}\n{b}")
    fa = open(os.path.join(straight, "adapter", "adapter_model.safetensors"), "rb").read()
    fb = open(os.path.join(out, "adapter", "adapter_model.safetensors"), "rb").read()
    if fa != fb:
        fail("resumed run's adapter differs from the straight run's")
    print(f"resume: {len(a)} loss lines identical, adapter byte-identical")


def generate(model, adapter=None):
    args = ["generate", model, "--prompt", "The patient", "--max-new", "12"]
    return run(args + (["--adapter", adapter] if adapter else [])).stdout


def chain(arch, fmt, model, work):
    print(f"== {arch} from {fmt}: {model}")
    info = cli_json(["info", model])
    if info.get("architecture") != arch:
        fail(f"info {model}: architecture {info.get('architecture')!r}, expected {arch!r}")
    shards = prep_sample(os.path.join(work, "shards"), model)
    out = os.path.join(work, "run")
    run(["train", train_config(os.path.join(work, "train.json"), model, shards, out, 4)])
    adapter = os.path.join(work, "peft")
    run(["export", out, adapter])
    gguf_adapter = os.path.join(work, "adapter.gguf")
    run(["export", out, gguf_adapter, "--format", "gguf"])
    from gguf import GGUFReader
    got = GGUFReader(gguf_adapter).fields["general.architecture"]
    got = bytes(got.parts[got.data[0]]).decode()
    if got != GGUF_ARCH[arch]:
        fail(f"{gguf_adapter}: general.architecture {got!r}, expected {GGUF_ARCH[arch]!r}")
    ev = ["eval", model, "--shards", shards, "--seq-len", str(SEQ)]
    base = cli_json(ev)["loss"]
    tuned = cli_json(ev + ["--adapter", adapter])["loss"]
    merged = os.path.join(work, "merged" + (".gguf" if fmt == "gguf" else ""))
    run(["merge", model, adapter, merged] + (["--type", "f32"] if fmt == "gguf" else []))
    m_info = cli_json(["info", merged])
    if m_info.get("architecture") != arch:
        fail(f"info {merged}: architecture {m_info.get('architecture')!r}, expected {arch!r}")
    m_loss = cli_json(["eval", merged, "--shards", shards, "--seq-len", str(SEQ)])["loss"]
    print(f"eval loss: base {base:.6f}, base + adapter {tuned:.6f}, merged {m_loss:.6f}")
    if not tuned < base:
        fail(f"training did not lower the loss ({base} -> {tuned})")
    if abs(m_loss - tuned) > TOL_MERGED_LOSS:
        fail(f"merged model's loss {m_loss} differs from base + adapter's {tuned} by more "
             f"than {TOL_MERGED_LOSS}")
    g_adapter, g_merged = generate(model, adapter), generate(merged)
    print(f"generate (base + adapter): {g_adapter.strip()!r}")
    if g_adapter != g_merged:
        fail(f"greedy generation differs: base + adapter {g_adapter!r}, merged {g_merged!r}")
    if arch in RESUME and fmt == "hf":
        check_resume(work, model, shards, out)


def main():
    # One process for every architecture asked for: they share one prerequisite (the oracle
    # venv), so a clone without it has one skipped test, not one per architecture.
    archs = sys.argv[1:]
    if not archs or any(a not in GGUF_ARCH for a in archs):
        fail(f"usage: check_cli_chain.py ARCH... (ARCH: {' '.join(GGUF_ARCH)})")
    for arch in archs:
        root = work_dir("arch", f"cli_chain_{arch}")
        hf, gguf_path = make_model(arch, root)
        for fmt, model in (("hf", hf), ("gguf", gguf_path)):
            work = os.path.join(root, fmt)
            os.makedirs(work)
            chain(arch, fmt, model, work)
        print(f"{arch}: every command from HF and GGUF passed")
    print("PASS")


if __name__ == "__main__":
    sys.exit(main())
