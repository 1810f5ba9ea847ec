"""The independent anchor: medtune eval --mcq against lm-evaluation-harness itself (lm_eval
0.4.13 in the oracle venv, its Hugging Face model in float32 on the CPU), on the same items of
MedQA (4 options), MedMCQA, PubMedQA (PQA-L test PMIDs) and MMLU anatomy, scored by
`medtune eval --suite` (per-item files and results.json). The harness runs its
own task definitions (included from its task folder, only the dataset pointed at local JSON
lines written here in the Hugging Face datasets' field layout), so the prompts are its
doc_to_text, not a copy. Per choice, the log-likelihoods agree within 1e-4; per item, the
predictions (acc and acc_norm) are identical, and so are the accuracies. Models: the
tinystories-656k HF directory of ../shared (contexts longer than its 512 positions are cut
from the left by both), and SmolLM2-135M-Instruct's GGUF merged with a random LoRA adapter
into an HF directory by `medtune merge --dtype f16` when the GGUF is in .cache.
The oracle venv is $MEDTUNE_ORACLE_VENV or $MEDTUNE_CACHE/venv-oracle; the test skips when
it is absent."""
import csv
import json
import os
import subprocess
import sys

from eval_ref import HERE, env, fail, run, shared_dir, skip, work_dir

sys.path.insert(0, os.path.join(HERE, "..", "export"))
from export_lib import random_adapter  # noqa: E402

TOL = 1e-4
LETTERS = "ABCD"


def oracle_python():
    venv = env("MEDTUNE_ORACLE_VENV", os.path.join(env("MEDTUNE_CACHE", ""), "venv-oracle"))
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        skip(f"the oracle venv with lm_eval is absent ({py}; set MEDTUNE_ORACLE_VENV)")
    p = subprocess.run([py, "-c", "import lm_eval, transformers, torch"], capture_output=True,
                       text=True)
    if p.returncode:
        skip(f"{py} cannot import lm_eval/transformers/torch: {p.stderr.strip()[-300:]}")
    return py


def write_jsonl(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return path


def make_items(shared, work, n):
    """For each task: (medtune's file, format, the harness's docs file, gold indices)."""
    data = os.path.join(shared, "data")
    tasks = {}
    lines = open(os.path.join(data, "medqa", "phrases_no_exclude_test.jsonl")).read().splitlines()[:n]
    recs = [json.loads(l) for l in lines]
    tasks["medqa"] = (write_jsonl(os.path.join(work, "medqa.jsonl"), recs), "medqa",
                      write_jsonl(os.path.join(work, "medqa.docs.jsonl"), [
                          {"sent1": r["question"], "ending0": r["options"]["A"],
                           "ending1": r["options"]["B"], "ending2": r["options"]["C"],
                           "ending3": r["options"]["D"], "label": LETTERS.index(r["answer_idx"])}
                          for r in recs]),
                      [LETTERS.index(r["answer_idx"]) for r in recs])
    lines = open(os.path.join(data, "medmcqa", "dev.json")).read().splitlines()[:n]
    recs = [json.loads(l) for l in lines]
    tasks["medmcqa"] = (write_jsonl(os.path.join(work, "medmcqa.json"), recs), "medmcqa",
                        write_jsonl(os.path.join(work, "medmcqa.docs.jsonl"), [
                            dict({k: r[k] for k in ("question", "opa", "opb", "opc", "opd")},
                                 cop=r["cop"] - 1) for r in recs]),  # 1-based in the file
                        [r["cop"] - 1 for r in recs])
    pqal = json.load(open(os.path.join(data, "pubmedqa", "ori_pqal.json")))
    gold = json.load(open(os.path.join(data, "pubmedqa", "test_ground_truth.json")))
    pmids = [p for p in pqal if p in gold][:n]
    sub = {p: dict(pqal[p], final_decision=gold[p]) for p in pmids}
    path = os.path.join(work, "pubmedqa.json")
    json.dump(sub, open(path, "w"))
    tasks["pubmedqa"] = (path, "pubmedqa", write_jsonl(os.path.join(work, "pubmedqa.docs.jsonl"), [
        {"QUESTION": sub[p]["QUESTION"], "CONTEXTS": sub[p]["CONTEXTS"],
         "final_decision": sub[p]["final_decision"]} for p in pmids]),
        [["yes", "no", "maybe"].index(sub[p]["final_decision"]) for p in pmids])
    rows = list(csv.reader(open(os.path.join(data, "mmlu_medical", "test", "anatomy_test.csv"),
                                newline="")))[:n]
    mmlu_dir = os.path.join(work, "mmlu")
    os.makedirs(mmlu_dir)
    path = os.path.join(mmlu_dir, "anatomy_test.csv")  # the subject comes from the file name
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    tasks["mmlu_anatomy"] = (path, "mmlu", write_jsonl(os.path.join(work, "mmlu.docs.jsonl"), [
        {"question": r[0], "choices": r[1:5], "answer": LETTERS.index(r[5])} for r in rows]),
        [LETTERS.index(r[5]) for r in rows])
    return tasks


def harness(py, runs):
    """lm-eval's results for runs [(model, work, tasks)], in one oracle process."""
    spec = [[m, w, {t: v[2] for t, v in tasks.items()}] for m, w, tasks in runs]
    p = subprocess.run([py, os.path.join(HERE, "lm_eval_side.py"), json.dumps(spec)],
                       capture_output=True, text=True,
                       env=dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1",
                                TRANSFORMERS_OFFLINE="1", HF_HOME=os.path.join(runs[0][1], "hf"),
                                TOKENIZERS_PARALLELISM="false"))
    line = [l for l in p.stdout.splitlines() if l.startswith("LM_EVAL_JSON ")]
    if p.returncode or not line:
        fail(f"lm_eval failed:\n{p.stderr[-4000:]}")
    return json.loads(line[0][len("LM_EVAL_JSON "):])


def check_model(label, model, work, tasks, ref, n):
    """medtune's suite over the tasks (one model load) against the harness's results ref."""
    suite = os.path.join(work, "suite.json")
    json.dump({"name": label, "tasks": [{"name": t, "format": v[1], "path": v[0]}
                                        for t, v in tasks.items()]}, open(suite, "w"))
    out = os.path.join(work, "out")
    run(["eval", model, "--suite", suite, "--out-dir", out])
    results = {t["task"]: t for t in json.load(open(os.path.join(out, "results.json")))["tasks"]}
    for name, (path, fmt, _, gold) in tasks.items():
        summary = results[name]["model"]
        got = [json.loads(l) for l in open(os.path.join(out, name + ".jsonl"))]
        docs = ref[name]["docs"]
        if len(got) != len(docs) or len(got) != n:
            fail(f"{label}/{name}: medtune scored {len(got)} items, the harness {len(docs)}")
        worst = 0.0
        for k, (g, d) in enumerate(zip(got, docs)):
            if isinstance(d["target"], str):  # pubmedqa's doc_to_target is the answer word
                d["target"] = ["yes", "no", "maybe"].index(d["target"])
            if g["gold"] != gold[k] or d["target"] != gold[k]:
                fail(f"{label}/{name} item {k}: gold {g['gold']}, harness target {d['target']}, "
                     f"file {gold[k]}")
            for c, (a, b) in enumerate(zip(g["loglikelihoods"], d["ll"])):
                worst = max(worst, abs(a - b))
                if abs(a - b) > TOL:
                    fail(f"{label}/{name} item {k} ({g['id']}) choice {c}: medtune {a:.6f}, "
                         f"lm-eval {b:.6f}")
            if float(g["correct"]) != d["acc"] or float(g["correct_norm"]) != d["acc_norm"]:
                fail(f"{label}/{name} item {k}: medtune correct {g['correct']}/"
                     f"{g['correct_norm']}, lm-eval acc {d['acc']}/{d['acc_norm']}")
        if summary["acc"] != ref[name]["acc"] or summary["acc_norm"] != ref[name]["acc_norm"]:
            fail(f"{label}/{name}: medtune acc {summary['acc']}/{summary['acc_norm']}, "
                 f"lm-eval {ref[name]['acc']}/{ref[name]['acc_norm']}")
        trunc = sum(1 for g in got if g["truncated"])
        print(f"{label}/{name}: {n} items ({trunc} truncated), acc {summary['acc']:.3f} "
              f"acc_norm {summary['acc_norm']:.3f} = lm-eval's, max |ll diff| {worst:.1e}")


def main():
    py = oracle_python()
    shared = shared_dir()
    work = work_dir("lm_eval")
    runs = []  # (label, model, work, tasks, n)
    tiny_work = os.path.join(work, "tiny")
    os.makedirs(tiny_work)
    runs.append(("tinystories-656k", os.path.join(shared, "models", "tinystories-656k"),
                 tiny_work, make_items(shared, tiny_work, 8), 8))
    gguf = os.path.join(env("MEDTUNE_CACHE", ""), "SmolLM2-135M-Instruct.Q4_1.gguf")
    if os.path.exists(gguf):
        adapter = random_adapter(work, gguf, "adapter", r=4, alpha=8, targets="all")
        merged = os.path.join(work, "smollm2_merged")
        run(["merge", gguf, adapter, merged, "--dtype", "f16"])  # half the bytes to write and read
        smol_work = os.path.join(work, "smollm2")
        os.makedirs(smol_work)
        runs.append(("smollm2+lora merged", merged, smol_work, make_items(shared, smol_work, 3), 3))
    else:
        print(f"SmolLM2 part skipped: {gguf} is absent (tools/fetch_smollm2.sh)")
    refs = harness(py, [(m, w, t) for _, m, w, t, _ in runs])
    for (label, model, w, tasks, n), ref in zip(runs, refs):
        check_model(label, model, w, tasks, ref, n)
    print("OK")


if __name__ == "__main__":
    main()
