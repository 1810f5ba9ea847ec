"""tools/self_negatives.py, the English preference recipe: on hand-written MedQuAD XML and
medAlpaca records and a random-weight model (fresh clone), the pairs it writes hold the
reference answers as chosen, `medtune generate`'s greedy answers (asked directly here) as
rejected, the same selection for the same seed, and `prep` reads them as format `preference`.
Bad sources give one `medtune: error:` line."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from fresh_lib import fresh_model  # noqa: E402
from testlib import TESTS, env, fail, medtune_bin, run, work_dir  # noqa: E402

SCRIPT = os.path.join(env("MEDTUNE_SOURCE", os.path.join(TESTS, "..")), "tools",
                      "self_negatives.py")

MEDQUAD = {
    "a/0001.xml": [("What is (are) anemia ?",
                    "Anemia is a condition in which\n      the blood has too few red cells.",
                    "Anemia is a condition in which\nthe blood has too few red cells."),
                   ("What causes anemia ?", "", None)],
    "b/0002.xml": [("How to prevent  tetanus ?", "Keep tetanus   vaccination up to date.",
                    "Keep tetanus vaccination up to date."),
                   ("What is (are) anemia ?", "A duplicate question, dropped.", None)],
}
MEDALPACA = [
    {"instruction": "Answer this question truthfully", "input": "What lowers blood pressure?",
     "output": "Less salt, regular exercise and, when needed, medicines."},
    {"instruction": "Answer this question truthfully", "input": "", "output": "No question."},
    {"instruction": "Answer this question truthfully", "input": "What is a fever?",
     "output": "A body temperature above 38 degrees Celsius."},
]


def write_sources(work):
    answers = {}
    for rel, pairs in MEDQUAD.items():
        path = os.path.join(work, "medquad", rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        body = "".join(f'<QAPair pid="{i}"><Question>{q}</Question><Answer>{a}</Answer></QAPair>'
                       for i, (q, a, _) in enumerate(pairs, 1))
        with open(path, "w") as f:
            f.write(f'<?xml version="1.0"?><Document id="x"><QAPairs>{body}</QAPairs></Document>')
        for q, _, expect in pairs:
            if expect is not None:
                answers[" ".join(q.split())] = expect
    for r in MEDALPACA:
        if r["input"]:
            answers[r["input"]] = r["output"]
    alpaca = os.path.join(work, "medalpaca.json")
    with open(alpaca, "w") as f:
        json.dump(MEDALPACA, f)
    return os.path.join(work, "medquad"), alpaca, answers


def recipe(args):
    return subprocess.run([sys.executable, SCRIPT] + args, capture_output=True, text=True,
                          env=dict(os.environ, MEDTUNE_BIN=medtune_bin()))


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def main():
    work = work_dir("prep", "self_negatives")
    model = fresh_model(os.path.join(work, "model"))
    medquad, alpaca, answers = write_sources(work)
    base = ["--model", model, "--medquad", medquad, "--medalpaca", alpaca, "--n", "3",
            "--val", "1", "--max-new", "6", "--threads", "1"]
    outs = {}
    for name, seed in (("a", "0"), ("b", "0"), ("c", "5")):
        out = os.path.join(work, name)
        p = recipe(base + ["--seed", seed, "--out", out])
        if p.returncode != 0:
            fail(f"recipe exited {p.returncode}: {p.stderr}")
        outs[name] = (read_jsonl(os.path.join(out, "train.jsonl")),
                      read_jsonl(os.path.join(out, "val.jsonl")))
    train, val = outs["a"]
    if (len(train), len(val)) != (3, 1):
        fail(f"expected 3 train and 1 val pairs, got {len(train)} and {len(val)}")
    for row in train + val:
        q = row["prompt"][0]["content"]
        if row["prompt"] != [{"role": "user", "content": q}] or q not in answers:
            fail(f"unexpected prompt {row['prompt']}")
        if row["chosen"] != [{"role": "assistant", "content": answers[q]}]:
            fail(f"chosen of {q!r} is {row['chosen']}, expected the reference {answers[q]!r}")
        gen = json.loads(run(["generate", model, "--chat", q, "--max-new", "6", "--threads",
                              "1", "--json"]).stdout)
        if row["rejected"] != [{"role": "assistant", "content": gen["text"].strip()}]:
            fail(f"rejected of {q!r} is {row['rejected']}, medtune generate says {gen['text']!r}")
    if outs["b"] != outs["a"]:
        fail("the same seed gave different pairs")
    order = [r["prompt"][0]["content"] for r in train + val]
    if [r["prompt"][0]["content"] for part in outs["c"] for r in part] == order:
        fail("seed 5 selected the same questions in the same order as seed 0")

    cfg = os.path.join(work, "prep.json")
    with open(cfg, "w") as f:
        json.dump({"tokenizer": model, "template": "auto", "val_fraction": 0,
                   "inputs": [{"path": os.path.join(work, "a", "train.jsonl"),
                               "format": "preference"}],
                   "out_dir": os.path.join(work, "shards")}, f)
    run(["prep", cfg])
    info = run(["info", os.path.join(work, "shards")]).stdout
    if "3 pairs" not in info:
        fail(f"prep kept other than 3 pairs:\n{info}")

    for args, needle in ((["--medquad", os.path.join(work, "missing")], "no such file"),
                         (["--medalpaca", os.path.join(work, "model", "config.json")],
                          "JSON list"),
                         (["--medalpaca", alpaca, "--n", "9"], "usable records")):
        p = recipe(["--model", model, "--out", os.path.join(work, "bad")] + args)
        lines = p.stderr.strip().splitlines()
        if p.returncode != 1 or len(lines) != 1 or not lines[0].startswith("medtune: error:") \
                or needle not in lines[0]:
            fail(f"{args}: expected one error line naming {needle!r}, got {p.returncode}: "
                 f"{p.stderr}")
    print("self_negatives: pairs, references, generated negatives, seeds, prep, errors ok")


if __name__ == "__main__":
    main()
