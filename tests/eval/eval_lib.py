"""Helpers of the eval tests for a fresh clone: small benchmark files in the four formats of
`medtune eval --mcq` (PubMedQA, MedQA, MedMCQA, MMLU), built from the quickstart sample, and the
random-weight models the checks score them with."""
import csv
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from fresh_lib import LLAMA, fresh_model, quickstart_dir  # noqa: E402,F401


def first_sentence(text):
    end = text.find(". ")
    return text if end < 0 else text[:end + 1]


def sample_pairs():
    with open(os.path.join(quickstart_dir(), "medqa.jsonl")) as f:
        return [json.loads(line) for line in f]


def sample_benchmarks(out_dir, n=12):
    """Files of each benchmark format with n items: the question of quickstart pair i, its own
    answer's first sentence as the gold option (at position i % 4) and three other pairs'
    first sentences as distractors; PubMedQA items take the clinical notes as contexts and
    cycle through yes / no / maybe. Returns {format: path} like eval_ref.dataset_paths."""
    pairs = sample_pairs()
    notes = [p for p in open(os.path.join(quickstart_dir(), "clinical_notes.txt")).read()
             .split("\n\n") if p.strip()]
    os.makedirs(out_dir, exist_ok=True)
    items = []
    for i in range(n):
        others = [pairs[(i + k) % len(pairs)] for k in (7, 19, 31)]
        options = [first_sentence(p["output"]) for p in others]
        options.insert(i % 4, first_sentence(pairs[i]["output"]))
        items.append((pairs[i]["instruction"], options, i % 4))

    paths = {"medqa": os.path.join(out_dir, "medqa_test.jsonl"),
             "medmcqa": os.path.join(out_dir, "medmcqa_dev.json"),
             "pubmedqa": os.path.join(out_dir, "pubmedqa_test_set.json"),
             "mmlu": os.path.join(out_dir, "mmlu")}
    with open(paths["medqa"], "w") as f:
        for q, opts, gold in items:
            f.write(json.dumps({"question": q, "answer": opts[gold],
                                "options": dict(zip("ABCD", opts)),
                                "meta_info": "step1", "answer_idx": "ABCD"[gold]}) + "\n")
    with open(paths["medmcqa"], "w") as f:
        for i, (q, opts, gold) in enumerate(items):
            f.write(json.dumps({"question": q, "exp": None, "cop": gold + 1,
                                "opa": opts[0], "opb": opts[1], "opc": opts[2], "opd": opts[3],
                                "subject_name": "Medicine", "id": f"sample-{i:04d}"}) + "\n")
    decisions = ["yes", "no", "maybe"]
    pubmedqa = {}
    for i, (q, _, _) in enumerate(items):
        note = notes[i % len(notes)]
        pubmedqa[str(31000000 + 17 * i)] = {
            "QUESTION": q, "CONTEXTS": [s.strip() + "." for s in note.split(". ") if s][:3],
            "LABELS": ["BACKGROUND", "METHODS", "RESULTS"], "final_decision": decisions[i % 3]}
    with open(paths["pubmedqa"], "w") as f:
        json.dump(pubmedqa, f, indent=1)
    # Two subjects; answers hold commas and quotes, so the CSV needs quoting.
    os.makedirs(paths["mmlu"], exist_ok=True)
    half = n // 2
    for name, part in (("clinical_knowledge_test.csv", items[:half]),
                       ("professional_medicine_test.csv", items[half:])):
        with open(os.path.join(paths["mmlu"], name), "w", newline="") as f:
            w = csv.writer(f)
            for q, opts, gold in part:
                w.writerow([q] + opts + ["ABCD"[gold]])
    return paths


def pubmedqa_gold(paths, out_dir):
    """A test_ground_truth.json for every other item of the sample PubMedQA file, with the
    decision flipped, so the reader must take the gold file's answers and items."""
    data = json.load(open(paths["pubmedqa"]))
    flip = {"yes": "no", "no": "maybe", "maybe": "yes"}
    gold = {k: flip[v["final_decision"]] for i, (k, v) in enumerate(data.items()) if i % 2}
    path = os.path.join(out_dir, "pubmedqa_test_ground_truth.json")
    with open(path, "w") as f:
        json.dump(gold, f)
    return path
