"""Independent Python references for `medtune eval`: benchmark readers built on the json and
csv modules, the prompts of lm-evaluation-harness's pubmedqa / medqa_4options / medmcqa / mmlu
tasks, and harness-style log-likelihood scoring on the PyTorch twin (tests/twin)."""
import csv
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "twin"))

sys.path.insert(0, os.path.join(HERE, ".."))
from testlib import SKIP, env, fail, run, shared_dir, skip  # noqa: E402,F401
from testlib import medtune_bin as medtune  # noqa: E402,F401
from testlib import work_dir as _work_dir  # noqa: E402

LETTERS = "ABCDEFGH"
DECISIONS = ["yes", "no", "maybe"]


def work_dir(name):
    return _work_dir("eval_tests", name)


def dataset_paths(shared):
    d = os.path.join(shared, "data")
    return {
        "pubmedqa": os.path.join(d, "pubmedqa", "test_set.json"),
        "medqa": os.path.join(d, "medqa", "phrases_no_exclude_test.jsonl"),
        "medmcqa": os.path.join(d, "medmcqa", "dev.json"),
        "mmlu": os.path.join(d, "mmlu_medical", "test"),
    }


# ------------------------------------------------------------------ readers and prompts
# Each returns (items, skipped): items are dicts {id, context, choices, gold}.

def read_pubmedqa(path, limit=0, gold_path=None):
    data = json.load(open(path, encoding="utf-8"))
    gold = json.load(open(gold_path, encoding="utf-8")) if gold_path else None
    items, skipped = [], 0
    for pmid, rec in data.items():
        if limit and len(items) == limit:
            break
        if gold is not None and pmid not in gold:
            continue
        dec = gold[pmid] if gold is not None else (rec.get("final_decision")
                                                  if isinstance(rec, dict) else None)
        ok = (isinstance(rec, dict) and isinstance(rec.get("QUESTION"), str)
              and isinstance(rec.get("CONTEXTS"), list)
              and all(isinstance(c, str) for c in rec["CONTEXTS"]) and dec in DECISIONS)
        if not ok:
            skipped += 1
            continue
        # lm-evaluation-harness pubmedqa: doc_to_text
        text = "Abstract: {}\nQuestion: {}\nAnswer:".format("\n".join(rec["CONTEXTS"]),
                                                           rec["QUESTION"])
        items.append({"id": pmid, "context": text, "choices": DECISIONS,
                      "gold": DECISIONS.index(dec)})
    return items, skipped


def _jsonl(path):
    with open(path, encoding="utf-8", newline="") as f:
        for n, line in enumerate(f.read().split("\n"), 1):
            if line.strip():
                yield n, line


def _read_jsonl_items(path, limit, make_item):
    """Items of a JSONL benchmark file: make_item(record, line_number) gives an item, or None
    for a malformed record; lines that are not JSON are skipped too."""
    items, skipped = [], 0
    for n, line in _jsonl(path):
        if limit and len(items) == limit:
            break
        try:
            rec = json.loads(line)
        except ValueError:
            skipped += 1
            continue
        item = make_item(rec, n) if isinstance(rec, dict) else None
        if item is None:
            skipped += 1
        else:
            items.append(item)
    return items, skipped


def _medqa_item(path, rec, n):
    opts = rec.get("options")
    if not (isinstance(rec.get("question"), str)
            and isinstance(opts, dict) and 2 <= len(opts) <= 8
            and list(opts) == list(LETTERS[:len(opts)])
            and all(isinstance(v, str) for v in opts.values())
            and rec.get("answer_idx") in opts):
        return None
    # lm-evaluation-harness medqa_4options: doc_to_text
    text = f"Question: {rec['question']}\n" + "".join(f"{k}. {v}\n" for k, v in opts.items())
    text += "Answer:"
    return {"id": f"{os.path.basename(path)}:{n}", "context": text,
            "choices": list(opts), "gold": list(opts).index(rec["answer_idx"])}


def _medmcqa_item(path, rec, n):
    cop = rec.get("cop")
    if not (isinstance(rec.get("question"), str)
            and all(isinstance(rec.get(k), str) for k in ("opa", "opb", "opc", "opd"))
            and isinstance(cop, (int, float)) and not isinstance(cop, bool)
            and cop == int(cop) and 1 <= cop <= 4):
        return None
    # lm-evaluation-harness medmcqa: utils_medmcqa.doc_to_text
    text = "Question: " + rec["question"] + "\nChoices:\n"
    for letter, key in zip("ABCD", ("opa", "opb", "opc", "opd")):
        text += f"{letter}. {rec[key]}\n"
    text += "Answer:"
    rid = rec["id"] if isinstance(rec.get("id"), str) else f"{os.path.basename(path)}:{n}"
    return {"id": rid, "context": text, "choices": list("ABCD"), "gold": int(cop) - 1}


def read_medqa(path, limit=0):
    return _read_jsonl_items(path, limit, lambda rec, n: _medqa_item(path, rec, n))


def read_medmcqa(path, limit=0):
    return _read_jsonl_items(path, limit, lambda rec, n: _medmcqa_item(path, rec, n))


def mmlu_subject(path):
    name = os.path.basename(path)
    for suffix in (".csv", "_test", "_dev", "_val"):
        if name.endswith(suffix) and len(name) > len(suffix):
            name = name[:-len(suffix)]
    return name.replace("_", " ")


def read_mmlu_file(path, limit=0):
    items, skipped = [], 0
    desc = f"The following are multiple choice questions (with answers) about {mmlu_subject(path)}.\n\n"
    with open(path, encoding="utf-8", newline="") as f:
        r = csv.reader(f)
        start = 1
        for row in r:
            line, start = start, r.line_num + 1
            if limit and len(items) == limit:
                break
            if not row:
                continue
            if len(row) != 6 or row[5] not in ("A", "B", "C", "D") or any("\0" in x for x in row):
                skipped += 1
                continue
            # lm-evaluation-harness mmlu: description + _default_template_yaml doc_to_text
            text = desc + f"{row[0].strip()}\nA. {row[1]}\nB. {row[2]}\nC. {row[3]}\nD. {row[4]}\nAnswer:"
            items.append({"id": f"{os.path.basename(path)}:{line}", "context": text,
                          "choices": list("ABCD"), "gold": "ABCD".index(row[5])})
    return items, skipped


def read_mmlu(path, limit=0):
    if not os.path.isdir(path):
        return read_mmlu_file(path, limit)
    items, skipped = [], 0
    for name in sorted(os.listdir(path)):
        if name.endswith(".csv"):
            i, s = read_mmlu_file(os.path.join(path, name), limit)
            items += i
            skipped += s
    return items, skipped


def read_items(fmt, path, limit=0, gold=None):
    if fmt == "pubmedqa":
        return read_pubmedqa(path, limit, gold)
    return {"medqa": read_medqa, "medmcqa": read_medmcqa, "mmlu": read_mmlu}[fmt](path, limit)


# ------------------------------------------------------------------ harness-style scoring

class Scorer:
    """log-likelihoods of continuations as lm-evaluation-harness's HFLM computes them, with the
    twin as the model and HF `tokenizers` as the tokenizer."""

    def __init__(self, model_path, add_special=False):
        import torch
        from llama import Twin
        from model_io import load_model, load_tokenizer
        self.torch = torch
        cfg, weights = load_model(model_path)
        self.cfg = cfg
        self.twin = Twin(cfg, weights, {}, 1.0)
        self.tok, self.add_bos, self.bos = load_tokenizer(model_path, cfg)
        self.add_special = add_special

    def encode(self, text):
        ids = self.tok.encode(text, add_special_tokens=self.add_special).ids
        if self.add_special and self.add_bos and self.bos is not None and ids[:1] != [self.bos]:
            ids = [self.bos] + ids  # transformers' LlamaTokenizerFast adds BOS from add_bos_token
        return ids

    def score(self, context, choices, max_len):
        """[(loglikelihood, n_continuation_tokens)] per choice; inputs at most max_len long."""
        torch = self.torch
        ctx = context.rstrip()
        ws = context[len(ctx):]
        ctx_enc = self.encode(ctx)
        out = []
        for c in choices:
            cont_text = ws + " " + c
            whole = self.encode(ctx + cont_text)
            cont = whole[len(ctx_enc):]
            inp = (ctx_enc + cont)[-(max_len + 1):][:-1]
            T = len(inp)
            tokens = torch.tensor([inp], dtype=torch.int64)
            positions = torch.arange(T)[None]
            doc_ids = torch.zeros(1, T, dtype=torch.int64)
            with torch.no_grad():
                logits = self.twin.forward(tokens, positions, doc_ids)[0]
                logp = torch.log_softmax(logits[T - len(cont):T].double(), dim=-1)
            ll = sum(logp[j, t].item() for j, t in enumerate(cont))
            out.append((ll, len(cont)))
        return out
