#!/usr/bin/env python3
"""`medtune quickstart` end to end, checked with independent readers.

fallback  MEDTUNE_CACHE points at an empty folder: the quickstart says it uses the tiny model,
          writes it, and runs the whole pipeline. Checked:
          - every path of summary.json exists and the printed summary names it;
          - the tiny model: HF `tokenizers` loads its tokenizer.json, and jinja2 rendering of
            its chat_template + HF encoding gives the prompt ids `medtune generate --json`
            uses; the safetensors package reads its weights;
          - val loss: summary.json equals the first and last val_loss of metrics.jsonl, and it
            went down; the merged-model check agrees;
          - the PEFT export equals the run's final adapter (safetensors package), the GGUF
            adapter parses with the gguf package (general.type adapter, alpha = scale * r,
            A equal to PEFT's), the merged model equals base + scale * B A computed with numpy;
          - `medtune info` describes adapter, checkpoint, merged model and tiny model;
          - every command printed under "Next:" runs and exits 0.
cli       --help lists every option with its default; usage errors exit 2; a missing --model
          or a non-empty --out exits 1 with one error line; --tiny --steps --threads
          --question are honoured; without --out, runs/quickstart then runs/quickstart-2; the
          tiny model files are byte-identical across runs.
smollm2   (slow) the real SmolLM2-135M-Instruct: val loss goes down, outputs exist, the two
          answers differ, the merged model agrees with base + adapter; prints the wall time.
"""
import json
import os
import shlex
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import fail, medtune_bin, run, skip, smollm2, work_dir  # noqa: E402

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
MODULE = {"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn",
          "o_proj": "self_attn", "gate_proj": "mlp", "up_proj": "mlp", "down_proj": "mlp"}
GG = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
      "gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down"}


def quickstart(args, cwd, env=None, expect=0):
    t0 = time.time()
    p = subprocess.run([medtune_bin(), "quickstart"] + args, cwd=cwd, capture_output=True,
                       text=True, env=env)
    if expect is not None and p.returncode != expect:
        fail(f"medtune quickstart {' '.join(args)} exited {p.returncode}, expected {expect}\n"
             f"stdout: {p.stdout[-3000:]}\nstderr: {p.stderr[-3000:]}")
    return p, time.time() - t0


def load_summary(cwd, out):
    with open(os.path.join(cwd, out, "summary.json")) as f:
        return json.load(f)


def val_losses(cwd, run_dir):
    vals = []
    with open(os.path.join(cwd, run_dir, "metrics.jsonl")) as f:
        for line in f:
            o = json.loads(line)
            if "val_loss" in o:
                vals.append(o["val_loss"])
    return vals


def check_common(cwd, p, s, n_layers):
    """Checks shared by the tiny and the real run."""
    for k in range(1, 8):
        if f"[{k}/7]" not in p.stderr:
            fail(f"progress stage [{k}/7] missing from stderr:\n{p.stderr[-2000:]}")
    for key, path in s["paths"].items():
        if not os.path.exists(os.path.join(cwd, path)):
            fail(f"summary.json paths.{key} = {path} does not exist")
        if key not in ("out", "data_notes", "prep_config", "train_config", "prep_notes_config",
                       "dapt_config") and path not in p.stdout:
            fail(f"the printed summary does not name {key} ({path}):\n{p.stdout}")
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        for d in (s["paths"]["adapter"], s["paths"]["export_peft"],
                  os.path.join(s["paths"]["checkpoint"], "adapter")):
            if not os.path.exists(os.path.join(cwd, d, name)):
                fail(f"{d}/{name} missing")
    if not os.path.exists(os.path.join(cwd, s["paths"]["checkpoint"], "state.h5")):
        fail("the checkpoint has no state.h5")

    vals = val_losses(cwd, s["paths"]["run"])
    t = s["train"]
    # cJSON prints doubles with 15 significant digits when they read back within its epsilon.
    if len(vals) < 2 or abs(vals[0] - t["val_loss_before"]) > 1e-12 or \
            abs(vals[-1] - t["val_loss_after"]) > 1e-12:
        fail(f"summary val losses {t['val_loss_before']}, {t['val_loss_after']} differ from "
             f"metrics.jsonl {vals}")
    if not t["val_loss_after"] < t["val_loss_before"]:
        fail(f"val loss did not go down: {t['val_loss_before']} -> {t['val_loss_after']}")
    ck = s["merge_check"]
    # One adapter, one held-out loss: eval scores the packed Q&A with training's attention.
    if abs(ck["val_loss_base_plus_adapter"] - t["val_loss_after"]) > 1e-6:
        fail(f"eval's base + adapter val loss {ck['val_loss_base_plus_adapter']} != training's "
             f"{t['val_loss_after']}")
    if abs(ck["val_loss_merged"] - ck["val_loss_base_plus_adapter"]) > 1e-4:
        fail(f"merged model val loss {ck['val_loss_merged']} != base + adapter "
             f"{ck['val_loss_base_plus_adapter']}")
    for text in (s["answers"]["base"], s["answers"]["adapter"]):
        if text not in open(os.path.join(cwd, s["paths"]["answers"])).read():
            fail("answers.md does not hold both answers")
    for label in ("--- base model (greedy) ---", "--- base model + LoRA adapter"):
        if label not in p.stdout:
            fail(f"'{label}' missing from the printed summary")

    peft, cfg = read_peft(os.path.join(cwd, s["paths"]["export_peft"]))
    final, _ = read_peft(os.path.join(cwd, s["paths"]["adapter"]))
    if sorted(peft) != sorted(final) or any(not np.array_equal(peft[k], final[k]) for k in peft):
        fail("the PEFT export of the last checkpoint differs from the run's final adapter")
    if len(peft) != 2 * len(TARGETS) * n_layers:
        fail(f"PEFT export holds {len(peft)} tensors, expected {2 * len(TARGETS) * n_layers}")
    check_gguf(os.path.join(cwd, s["paths"]["export_gguf"]), peft, cfg, n_layers)
    return peft, cfg


def read_peft(d):
    from safetensors.numpy import load_file
    with open(os.path.join(d, "adapter_config.json")) as f:
        cfg = json.load(f)
    return load_file(os.path.join(d, "adapter_model.safetensors")), cfg


def peft_name(layer, t, ab):
    return f"base_model.model.model.layers.{layer}.{MODULE[t]}.{t}.lora_{ab}.weight"


def check_gguf(path, peft, cfg, n_layers):
    from gguf import GGUFReader
    r = GGUFReader(path)

    def field(name):
        f = r.fields.get(name)
        if f is None:
            fail(f"{path}: no {name}")
        v = f.parts[f.data[0]]
        return bytes(v).decode() if f.types[0].name == "STRING" else float(v[0])

    if field("general.type") != "adapter" or field("adapter.type") != "lora":
        fail(f"{path}: general.type / adapter.type are not adapter / lora")
    r_, alpha = cfg["r"], cfg["lora_alpha"]
    scale = alpha / (r_ ** 0.5) if cfg.get("use_rslora") else alpha / r_
    if abs(field("adapter.lora.alpha") - scale * r_) > 1e-5:
        fail(f"{path}: adapter.lora.alpha {field('adapter.lora.alpha')} != scale * r {scale * r_}")
    tensors = {t.name: t for t in r.tensors}
    if len(tensors) != 2 * len(TARGETS) * n_layers:
        fail(f"{path}: {len(tensors)} tensors, expected {2 * len(TARGETS) * n_layers}")
    for layer in range(n_layers):
        for t in TARGETS:
            a = tensors.get(f"blk.{layer}.{GG[t]}.weight.lora_a")
            if a is None:
                fail(f"{path}: blk.{layer}.{GG[t]}.weight.lora_a missing")
            want = peft[peft_name(layer, t, "A")]
            got = np.asarray(a.data).reshape(want.shape)
            if not np.array_equal(got, want):
                fail(f"{path}: blk.{layer}.{GG[t]}.weight.lora_a differs from PEFT's A")


def check_merged(cwd, s, peft, cfg):
    """merged = base + scale * B A for every projection; every other tensor unchanged."""
    from safetensors.numpy import load_file
    base = load_file(os.path.join(cwd, s["paths"]["out"], "model", "model.safetensors"))
    merged = load_file(os.path.join(cwd, s["paths"]["merged"], "model.safetensors"))
    if sorted(base) != sorted(merged):
        fail(f"merged tensors {sorted(merged)[:4]}... differ from the base's")
    scale = cfg["lora_alpha"] / cfg["r"]
    worst = change = 0.0
    for name, w in base.items():
        want = w
        parts = name.split(".")
        if len(parts) == 6 and parts[4] in TARGETS:
            layer, t = int(parts[2]), parts[4]
            want = w + scale * (peft[peft_name(layer, t, "B")] @ peft[peft_name(layer, t, "A")])
            change = max(change, float(np.max(np.abs(merged[name] - w))))
        worst = max(worst, float(np.max(np.abs(merged[name] - want))))
    if worst > 1e-5:
        fail(f"merged weights differ from base + scale * B A by {worst}")
    if change == 0.0:
        fail("the merged projections equal the base's: the adapter did nothing")
    print(f"merged model = base + scale * B A (max |diff| {worst:.2e}, largest change {change:.2e})")


def check_tiny_tokenizer(cwd, model_dir, question):
    """HF tokenizers + jinja2 rendering of the tiny model's chat template give the prompt ids
    `medtune generate` feeds the model."""
    import jinja2
    from tokenizers import Tokenizer
    d = os.path.join(cwd, model_dir)
    tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    with open(os.path.join(d, "tokenizer_config.json")) as f:
        tpl = json.load(f)["chat_template"]
    text = jinja2.Environment().from_string(tpl).render(
        messages=[{"role": "user", "content": question}], add_generation_prompt=True)
    want = tok.encode(text, add_special_tokens=False).ids
    p = run(["generate", d, "--chat", question, "--max-new", "2", "--json"], cwd=cwd)
    got = json.loads(p.stdout)["prompt_ids"]
    if got != want:
        fail(f"tiny model prompt ids differ from HF tokenizers + jinja2:\n{got}\n{want}")
    sample = "Metformin 500 mg twice daily; HbA1c 8.1% (65 mmol/mol) — café\n"
    p = run(["tokenize", d], cwd=cwd, input=sample)
    if json.loads(p.stdout) != tok.encode(sample.rstrip("\n"), add_special_tokens=True).ids:
        fail("medtune tokenize on the tiny model differs from HF tokenizers")
    print(f"tiny tokenizer: {len(want)} prompt ids equal HF tokenizers + jinja2")


def next_commands(stdout):
    lines = stdout.split("\nNext:\n", 1)
    if len(lines) != 2:
        fail("the printed summary has no 'Next:' section")
    return [ln.strip() for ln in lines[1].splitlines() if ln.strip() and not ln.strip().startswith("#")]


def case_fallback():
    cwd = work_dir("quickstart", "fallback")
    empty = os.path.join(cwd, "empty-cache")
    os.makedirs(empty)
    env = dict(os.environ, MEDTUNE_CACHE=empty)
    p, seconds = quickstart(["--out", "qs", "--threads", "2"], cwd, env=env)
    if "TINY RANDOMLY INITIALISED" not in p.stderr or "was not found" not in p.stderr:
        fail(f"the fallback is not announced on stderr:\n{p.stderr[:2000]}")
    s = load_summary(cwd, "qs")
    if not s["tiny"] or s["model"] != "qs/model":
        fail(f"summary.json: tiny {s['tiny']}, model {s['model']}; expected the tiny qs/model")
    with open(os.path.join(cwd, "qs/model/config.json")) as f:
        n_layers = json.load(f)["num_hidden_layers"]
    peft, cfg = check_common(cwd, p, s, n_layers)
    check_merged(cwd, s, peft, cfg)
    check_tiny_tokenizer(cwd, "qs/model", s["question"])
    for path in (s["paths"]["adapter"], s["paths"]["export_peft"], s["paths"]["checkpoint"],
                 s["paths"]["merged"], "qs/model", s["paths"]["shards"]):
        run(["info", path], cwd=cwd)
    cmds = next_commands(p.stdout)
    if len(cmds) < 8:
        fail(f"expected at least 8 next commands, got {cmds}")
    for c in cmds:
        r = subprocess.run(c, shell=True, cwd=cwd, capture_output=True, text=True, env=env)
        if r.returncode != 0:
            fail(f"next command failed ({r.returncode}): {c}\n{r.stderr[-2000:]}")
    print(f"{len(cmds)} next commands ran; quickstart took {seconds:.1f} s")
    print(f"val loss {s['train']['val_loss_before']:.4f} -> {s['train']['val_loss_after']:.4f}")


def case_cli():
    cwd = work_dir("quickstart", "cli")
    p = run(["quickstart", "--help"], cwd=cwd)
    for opt in ("--out DIR", "--model PATH", "--tiny", "--steps N", "--threads N", "--question TEXT",
                "default: runs/quickstart", "SmolLM2", "tiny"):
        if opt not in p.stdout:
            fail(f"--help does not mention '{opt}':\n{p.stdout}")
    if "quickstart" not in run(["--help"], cwd=cwd).stdout:
        fail("`medtune --help` does not list quickstart")
    for args in (["--bogus"], ["extra"], ["--steps", "0"], ["--steps", "x"], ["--threads", "-1"],
                 ["--out"], ["--tiny", "--model", "m"], ["--question", ""], ["--out", "a", "--out", "b"]):
        p = run(["quickstart"] + args, cwd=cwd, expect=2)
        if "medtune quickstart:" not in p.stderr:
            fail(f"usage error for {args} without a message: {p.stderr}")
    p = run(["quickstart", "--model", "nowhere/model.gguf", "--out", "m"], cwd=cwd, expect=1)
    if p.stderr.strip() != "medtune: error: nowhere/model.gguf: no such file or directory (--model)":
        fail(f"missing --model: unexpected message {p.stderr!r}")
    os.makedirs(os.path.join(cwd, "busy"))
    open(os.path.join(cwd, "busy", "keep.txt"), "w").write("user data\n")
    p = run(["quickstart", "--tiny", "--out", "busy"], cwd=cwd, expect=1)
    if "already exists and is not empty" not in p.stderr or len(p.stderr.strip().splitlines()) != 1:
        fail(f"non-empty --out: unexpected message {p.stderr!r}")
    if open(os.path.join(cwd, "busy", "keep.txt")).read() != "user data\n":
        fail("quickstart touched a non-empty --out directory")

    q = "Which potassium level is dangerous?"
    p, _ = quickstart(["--tiny", "--steps", "2", "--threads", "1", "--question", q, "--out", "a"], cwd)
    if "NOTE" in p.stderr:
        fail("--tiny printed the not-found note")
    s = load_summary(cwd, "a")
    with open(os.path.join(cwd, "a/run/config.json")) as f:
        rc = json.load(f)
    if rc["steps"] != 2 or rc["threads"] != 1 or s["question"] != q or s["train"]["steps"] != 2:
        fail(f"options not honoured: steps {rc['steps']}, threads {rc['threads']}, "
             f"question {s['question']!r}")
    # Without --out: runs/quickstart, then runs/quickstart-2 (an earlier run is kept).
    for out in ("runs/quickstart", "runs/quickstart-2"):
        p, _ = quickstart(["--tiny", "--steps", "1"], cwd)
        if f"Where everything is ({out}):" not in p.stdout or load_summary(cwd, out)["paths"]["out"] != out:
            fail(f"the default run directory is not {out}:\n{p.stdout[-1500:]}")
    for name in ("model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json"):
        if open(os.path.join(cwd, "a/model", name), "rb").read() != \
                open(os.path.join(cwd, "runs/quickstart/model", name), "rb").read():
            fail(f"the tiny model's {name} differs between two runs")
    print("cli: help, usage errors, refusals, options, default run directories and a "
          "reproducible tiny model")


def case_smollm2():
    model = smollm2()
    if not model:
        skip("SmolLM2-135M-Instruct GGUF is absent (tools/fetch_smollm2.sh)")
    cwd = work_dir("quickstart", "smollm2")
    p, seconds = quickstart(["--out", "qs"], cwd)
    s = load_summary(cwd, "qs")
    if s["tiny"] or os.path.realpath(os.path.join(cwd, s["model"])) != os.path.realpath(model):
        fail(f"summary.json model {s['model']} is not {model}")
    check_common(cwd, p, s, 30)
    if s["answers"]["base"] == s["answers"]["adapter"]:
        fail("the adapter did not change the answer")
    t = s["train"]
    print(f"SmolLM2 quickstart: {seconds:.1f} s wall ({t['steps']} steps, training "
          f"{t['seconds']:.1f} s); val loss {t['val_loss_before']:.4f} -> "
          f"{t['val_loss_after']:.4f}; load average {os.getloadavg()[0]:.1f}")
    print("base:    " + s["answers"]["base"][:300].replace("\n", " "))
    print("adapter: " + s["answers"]["adapter"][:300].replace("\n", " "))


if __name__ == "__main__":
    cases = {"fallback": case_fallback, "cli": case_cli, "smollm2": case_smollm2}
    if len(sys.argv) != 2 or sys.argv[1] not in cases:
        sys.exit(f"usage: {sys.argv[0]} {'|'.join(cases)}")
    cases[sys.argv[1]]()
