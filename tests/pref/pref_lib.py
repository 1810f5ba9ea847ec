"""Shared helpers of the preference (DPO/ORPO) tests: pair shards of the quickstart sample on a
fresh-clone model, the pairs read back independently of medtune, TRL's rows of a pair, and
run configs."""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "prep"))
from testlib import fail, run, work_dir as _work_dir  # noqa: E402,F401
from testlib import write_json  # noqa: E402,F401
from fresh_lib import fresh_model, quickstart_dir  # noqa: E402
import prep_ref  # noqa: E402


def work_dir(name):
    return _work_dir("pref_tests", name)


def pair_records():
    """TRL-style string pairs from the quickstart Q&A: the chosen answer is the record's own,
    the rejected one another record's (responses of other lengths)."""
    recs = [json.loads(l) for l in open(os.path.join(quickstart_dir(), "medqa.jsonl"))]
    return [{"prompt": r["instruction"], "chosen": r["output"],
             "rejected": recs[(i + 7) % len(recs)]["output"]} for i, r in enumerate(recs)]


def pair_shards(work, model, val_fraction=0.0, n=None):
    """Shards of the sample pairs (chatml template of the fresh model's tokenizer)."""
    recs = pair_records()[:n]
    path = os.path.join(work, "pairs.jsonl")
    with open(path, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in recs)
    out = os.path.join(work, "pairs")
    cfg = write_json(os.path.join(work, "prep_pairs.json"),
                     {"tokenizer": model, "inputs": [{"path": path, "format": "preference"}],
                      "val_fraction": val_fraction, "out_dir": out})
    run(["prep", cfg])
    return out


def fresh_pairs(work, val_fraction=0.0, n=None):
    """(model, pair shards) on a fresh clone: the random-weight llama and the sample pairs."""
    model = fresh_model(os.path.join(work, "model"))
    return model, pair_shards(work, model, val_fraction, n)


def fresh_usable_pairs(work, T):
    """(model, pair shards, the train pairs usable at seq_len T, pad id) on a fresh clone."""
    model, shards = fresh_pairs(work)
    pairs, pad = read_pairs(shards)
    return model, shards, usable(pairs, T), pad


def initial_adapter(path, cfg, rank, targets, seed, alpha=None):
    """A random LoRA adapter (B not zero: b_std 0.05) written as PEFT at path, lora_alpha
    2 * rank unless given; returns (path, its tensors detached)."""
    from llama import lora_init
    sys.path.insert(0, os.path.join(HERE, "..", "train"))
    from train_lib import write_peft_adapter
    lora = lora_init(cfg, rank, targets, seed=seed, b_std=0.05)
    write_peft_adapter(path, lora, r=rank, lora_alpha=alpha or 2 * rank, lora_dropout=0.0,
                       target_modules=targets, bias="none", use_rslora=False,
                       fan_in_fan_out=False)
    return path, {k: v.detach() for k, v in lora.items()}


def read_pairs(shards, split="train"):
    """[(prompt ids, chosen ids, rejected ids)] decoded from the shard files (prep_ref's
    reader, not medtune's), and the pad id (the manifest's eos id)."""
    m, words = prep_ref.read_split(shards, split)
    docs = prep_ref.split_docs(words)
    if len(docs) % 3:
        fail(f"{shards}: {len(docs)} documents, not a multiple of 3")
    pairs = [(docs[i][0], docs[i + 1][0], docs[i + 2][0]) for i in range(0, len(docs), 3)]
    return pairs, m["tokenizer"]["eos_id"]


def usable(pairs, T):
    """The pairs TRL's keep_start truncation to T + 1 tokens leaves a response token in."""
    return [p for p in pairs if len(p[0]) < T + 1]


def rows(pairs, T, pad):
    """TRL's concatenated batch as medtune lays it out: rows prompt+chosen then prompt+rejected,
    cut to T + 1 tokens, padded. Returns tokens [2P, T], targets [2P, T] (next token where it is
    not padding, else -1) and resp [2P, T] (1 where the target is a response token)."""
    toks, tgts, resp = [], [], []
    for k in (1, 2):
        for p in pairs:
            seq = (p[0] + p[k])[:T + 1]
            filled = len(seq)
            seq = seq + [pad] * (T + 1 - filled)
            toks.append(seq[:T])
            tgts.append([seq[j + 1] if j + 1 < filled else -1 for j in range(T)])
            resp.append([1 if len(p[0]) <= j + 1 < filled else 0 for j in range(T)])
    return toks, tgts, resp


def train_config(work, name, model, shards, **over):
    """A run config: r 4, alpha 8, dropout 0, constant lr, no clipping, no shuffle."""
    cfg = {"model": model, "data": {"train": shards},
           "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
           "optim": {"lr": 1e-2, "weight_decay": 0.0, "grad_clip": 0.0},
           "schedule": {"warmup_steps": 0, "decay": "constant"},
           "batch": {"micro_batch": 2, "seq_len": 48, "grad_accum": 1},
           "steps": 3, "shuffle": False, "save_every": 0, "threads": 2,
           "out_dir": os.path.join(work, name)}
    for key, value in over.items():
        node = cfg
        parts = key.split("__")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return write_json(os.path.join(work, name + ".json"), cfg)


def metrics(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(l) for l in f]


def adapter_tensors(adapter_dir):
    from safetensors.torch import load_file
    return load_file(os.path.join(adapter_dir, "adapter_model.safetensors"))


def grads_from_adam_step(before, after, lr=1.0, eps=1.0):
    """The gradient of a first AdamW step with weight decay 0: the update is
    -lr g / (|g| + eps) (bias corrections cancel at step 1), so g = -u / (lr - |u|) * eps."""
    out = {}
    for k, b in before.items():
        u = (after[k].double() - b.double())
        out[k] = -u * eps / (lr - u.abs())
    return out
