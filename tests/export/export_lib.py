"""Helpers of the export tests: paths, skipping, the base models a case runs on, running
medtune and the logits helper (tests/test_export_logits.c), a small trained run, PEFT-format
reading."""
import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from testlib import SKIP, env, fail, medtune_bin, shared_dir, skip, smollm2  # noqa: E402,F401
from testlib import run, work_dir as _work_dir  # noqa: E402
from fresh_lib import LLAMA, fresh_model, prep_sample, shared_or_none  # noqa: E402

BATCH, SEQ = 2, 24  # the fixed batch of test_export_logits
# The random base of a fresh clone: GQA and odd sizes, but head_dim = hidden / heads, because
# transformers 4.40 (the PEFT venv) derives head_dim from them.
SPEC = dict(LLAMA, n_heads=6, n_kv_heads=2, head_dim=10)


def tinystories():
    return os.path.join(shared_dir(), "models/tinystories-656k")


def is_tinystories(model):
    return os.path.basename(model) == "tinystories-656k"


def for_each_base(name, case):
    """Runs case(work, model) on a random-weight llama written here (always) and on
    tinystories-656k when ../shared is there, each in its own folder of work_dir(name)."""
    root = work_dir(name)
    bases = [("random_llama", None)]
    shared = shared_or_none()
    if shared:
        bases.append(("tinystories", os.path.join(shared, "models/tinystories-656k")))
    for label, model in bases:
        work = os.path.join(root, label)
        os.makedirs(work)
        model = model or fresh_model(os.path.join(work, "random_llama"), SPEC)
        print(f"== {label}: {model}")
        case(work, model)
    print("PASS")


def other_model(work, model):
    """A base whose shapes differ from `model`'s (adapters for it do not fit): stories260K
    beside tinystories, else a narrower random llama."""
    if is_tinystories(model):
        return os.path.join(os.path.dirname(model), "stories260K")
    return fresh_model(os.path.join(work, "other_llama"), SPEC, hidden_size=48, head_dim=8,
                       intermediate_size=84, seed=21)


def helper_bin():
    return os.path.join(env("MEDTUNE_TEST_BIN", "."), "test_export_logits")


def work_dir(name):
    return _work_dir("export_tests", name)


def helper(args, expect=0):
    return run(args, expect=expect, exe=helper_bin())


def test_tokens(vocab):
    i = np.arange(BATCH * SEQ, dtype=np.int64)
    return ((7919 * i + 13) % vocab).reshape(BATCH, SEQ)


def medtune_logits(work, model, adapter=None, tag="logits"):
    """Logits [B*T, V] of the fixed batch from medtune (lm_logits), optionally with an adapter."""
    out = os.path.join(work, tag + ".f32")
    helper(["dump", model, adapter or "-", out])
    return np.fromfile(out, dtype=np.float32).reshape(BATCH * SEQ, -1)


def random_adapter(work, model, name, r=8, alpha=16, targets="all", seed=1, rslora=0):
    d = os.path.join(work, name)
    helper(["random-adapter", model, d, str(r), str(alpha), targets, str(seed), str(rslora)])
    return d


def trained_run(work, model, steps=6, rslora=False):
    """A real `medtune train` run with a high learning rate, so the adapter moves the logits
    clearly: on the PubMed sample for tinystories, on the quickstart sample for the others.
    Returns the run directory."""
    shards = os.path.join(work, "shards")
    if is_tinystories(model):
        prep = os.path.join(work, "prep.json")
        with open(prep, "w") as f:
            json.dump({"tokenizer": model,
                       "inputs": [{"path": os.path.join(shared_dir(), "data/pubmed_xml/*.xml"),
                                   "format": "pubmed-xml"}],
                       "val_fraction": 0.1, "out_dir": shards}, f)
        run(["prep", prep])
    else:
        prep_sample(shards, model)
    out = os.path.join(work, "run")
    conf = os.path.join(work, "train.json")
    with open(conf, "w") as f:
        json.dump({"model": model, "data": {"train": shards},
                   "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "use_rslora": rslora,
                            "targets": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                        "up_proj", "down_proj"]},
                   "optim": {"lr": 0.02}, "batch": {"micro_batch": 2, "seq_len": 32},
                   "steps": steps, "save_every": 3, "threads": 2, "out_dir": out}, f)
    run(["train", conf])
    return out


def read_peft(adapter_dir):
    """(config dict, {tensor name: float32 array}) of a PEFT adapter directory."""
    from safetensors.numpy import load_file
    cfg = json.load(open(os.path.join(adapter_dir, "adapter_config.json")))
    return cfg, load_file(os.path.join(adapter_dir, "adapter_model.safetensors"))


def peft_scale(cfg):
    r, alpha = cfg["r"], cfg["lora_alpha"]
    return alpha / r ** 0.5 if cfg.get("use_rslora") else alpha / r


def run_measured(args):
    """Runs medtune and returns (stderr text, its own peak RSS in MiB) via wait4."""
    import tempfile
    with tempfile.TemporaryFile("w+") as err:
        p = subprocess.Popen([medtune_bin()] + args, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        text = err.read()
    if p.returncode != 0:
        fail(f"medtune {' '.join(args)} exited {p.returncode}\n{text[-3000:]}")
    return text, usage.ru_maxrss / 1024.0
