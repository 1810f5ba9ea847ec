"""Helpers shared by the eval drivers that build their own inputs: a seeded tiny Llama model
directory with a given tokenizer.json, and shards prepped from text written by the test."""
import json
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from testlib import fail, run, work_dir as _work_dir  # noqa: E402,F401
from make_model import write_model  # noqa: E402  (tests/twin, put on sys.path by testlib)


def work_dir(name):
    return _work_dir("eval_tests", name)


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
    return path


def tiny_model(out_dir, vocab_size, tokenizer_json=None, seed=1):
    """A random 2-layer Llama directory (make_model.py) of `vocab_size` rows, with a copy of
    `tokenizer_json` (a path) as its tokenizer.json when given."""
    write_model({"arch": "llama", "hidden_size": 32, "intermediate_size": 64, "n_layers": 2,
                 "n_heads": 4, "n_kv_heads": 2, "head_dim": 8, "vocab_size": vocab_size,
                 "tie": False, "rope_theta": 10000.0, "rope_scaling": None, "dtype": "F32",
                 "seed": seed, "max_position_embeddings": 1024}, out_dir)
    if tokenizer_json:
        shutil.copy(tokenizer_json, os.path.join(out_dir, "tokenizer.json"))
    return out_dir


MEDICAL_TEXT = [
    "Metformin lowers HbA1c by about 1% in adults with type 2 diabetes.",
    "Hypertension is defined as a blood pressure of 130/80 mmHg or higher.",
    "Warfarin therapy requires regular INR monitoring; the usual target is 2.0-3.0.",
    "Acute appendicitis presents with periumbilical pain migrating to the right iliac fossa.",
    "Beta-blockers reduce mortality after myocardial infarction.",
    "Iron-deficiency anaemia: microcytic, hypochromic red cells and low ferritin.",
]


def prep_text(out_dir, tokenizer, paragraphs=MEDICAL_TEXT, copies=8, val_fraction=0.3):
    """Shards (stream packing) of the paragraphs, each repeated `copies` times with a counter
    so that dedup keeps them, tokenized with `tokenizer`."""
    corpus = out_dir + ".txt"
    with open(corpus, "w") as f:
        for k in range(copies):
            for p in paragraphs:
                f.write(f"{p} (note {k})\n\n")
    cfg = write_json(out_dir + "_prep.json",
                     {"tokenizer": tokenizer, "inputs": [{"path": corpus, "format": "text"}],
                      "val_fraction": val_fraction, "out_dir": out_dir})
    run(["prep", cfg])
    return out_dir
