"""medtune eval --suite: a suite of three tasks on a tiny model, with --compare against a LoRA
adapter strong enough to change answers. Checked independently of medtune's own summaries:
items and gold answers re-read in Python (eval_ref), accuracies and average recounted from the
per-item files, Wilson intervals by bisection of the score test, McNemar's discordant counts
recounted and p-values as exact fractions (2 * sum C(n, k) / 2^n), results.csv against
results.json; the suite's per-item log-likelihoods equal `eval --mcq` on the same file. The
exact McNemar p of eval/stats.c is also checked for large counts (test_eval_stats). Always on a
random-weight GQA llama and the sample benchmark files (eval_lib); with ../shared also on
tinystories-656k and the real benchmarks, and configs/medical_suite.json (limits cut to 2) runs
from the repository root with its nine Open Medical-LLM Leaderboard tasks on stories260K. Bad
suites are refused with one error line."""
import csv
import json
import math
import os
import re
import subprocess
import sys
from fractions import Fraction

from eval_ref import HERE, dataset_paths, env, fail, read_items, run, work_dir
from eval_lib import LLAMA, fresh_model, pubmedqa_gold, sample_benchmarks, sharpen_head
from check_mcq_twin import wilson_by_bisection
from fresh_lib import shared_or_none

sys.path.insert(0, os.path.join(HERE, "..", "train"))
from train_lib import write_peft_adapter  # noqa: E402
from llama import lora_init  # noqa: E402
from testlib import expect_error  # noqa: E402
from model_io import load_model  # noqa: E402

REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
LEADERBOARD = {"pubmedqa": "pubmedqa", "medqa_4options": "medqa", "medmcqa": "medmcqa",
               "mmlu_clinical_knowledge": "mmlu", "mmlu_medical_genetics": "mmlu",
               "mmlu_anatomy": "mmlu", "mmlu_professional_medicine": "mmlu",
               "mmlu_college_biology": "mmlu", "mmlu_college_medicine": "mmlu"}


def mcnemar_exact(b, c):
    n, k = b + c, min(b, c)
    if n == 0:
        return 1.0
    tail = Fraction(sum(math.comb(n, i) for i in range(k + 1)), 2 ** n)
    return float(min(Fraction(1), 2 * tail))


def check_mcnemar_c():
    pairs = [(0, 0), (0, 1), (1, 0), (3, 3), (2, 9), (10, 3), (0, 25), (40, 60), (480, 530),
             (1500, 1610), (4000, 4100)]
    exe = os.path.join(env("MEDTUNE_TEST_BIN", "."), "test_eval_stats")
    out = subprocess.run([exe] + [str(x) for p in pairs for x in p], capture_output=True,
                         text=True, check=True).stdout.split("\n")
    worst = 0.0
    for (b, c), line in zip(pairs, out):
        got, ref = float(line.split()[2]), mcnemar_exact(b, c)
        worst = max(worst, abs(got - ref) / max(ref, 1e-300))
        if abs(got - ref) > 1e-10 * max(ref, 1e-300):
            fail(f"McNemar b={b} c={c}: p {got!r}, exact {ref!r}")
    print(f"exact McNemar p of {len(pairs)} pairs up to n=8100: max relative diff {worst:.1e}")


def strip_comments(text):
    return re.sub(r"/\*.*?\*/", "", re.sub(r"(?m)//.*$", "", text), flags=re.S)


def check_results(out, suite, tasks, compared):
    res = json.load(open(os.path.join(out, "results.json")))
    rows = {(r["task"], r["variant"]): r for r in csv.DictReader(open(os.path.join(out, "results.csv")))}
    variants = ["model", "compared"] if compared else ["model"]
    if len(res["tasks"]) != len(tasks) or len(rows) != len(tasks) * len(variants):
        fail(f"{out}: {len(res['tasks'])} tasks in results.json, {len(rows)} CSV rows")
    all_b = all_c = 0
    accs = {v: [] for v in variants}
    for t, (name, fmt, path, gold, limit) in zip(res["tasks"], tasks):
        items, _ = read_items(fmt, path, limit, gold)
        if t["task"] != name or t["n"] != len(items):
            fail(f"{name}: results say {t['task']} n={t['n']}, Python reads {len(items)} items")
        right = {}
        for v in variants:
            per = [json.loads(l) for l in open(os.path.join(
                out, name + (".compared" if v == "compared" else "") + ".jsonl"))]
            if [p["id"] for p in per] != [it["id"] for it in items]:
                fail(f"{name}/{v}: per-item ids differ from Python's reading")
            ok = [p["chosen"] == it["gold"] for p, it in zip(per, items)]
            ok_n = [p["chosen_norm"] == it["gold"] for p, it in zip(per, items)]
            right[v] = (ok, ok_n)
            s, row = t[v], rows[(name, v)]
            k, kn, n = sum(ok), sum(ok_n), len(items)
            accs[v].append((k / n, kn / n))
            if s["correct"] != k or s["correct_norm"] != kn or abs(s["acc"] - k / n) > 1e-15:
                fail(f"{name}/{v}: {s['correct']}/{s['correct_norm']} correct, recounted {k}/{kn}")
            for key, kk in (("ci95", k), ("ci95_norm", kn)):
                ref = wilson_by_bisection(kk, n)
                if max(abs(a - b) for a, b in zip(s[key], ref)) > 1e-9:
                    fail(f"{name}/{v}: {key} {s[key]}, score-test interval {ref}")
            csv_vals = (int(row["n"]), int(row["correct"]), float(row["acc"]),
                        float(row["acc_ci_lo"]), float(row["acc_ci_hi"]),
                        int(row["correct_norm"]), float(row["acc_norm"]))
            want = (n, k, s["acc"], s["ci95"][0], s["ci95"][1], kn, s["acc_norm"])
            # cJSON prints 15 significant digits when they read back within its epsilon
            if any(abs(x - y) > 1e-13 for x, y in zip(csv_vals, want)):
                fail(f"{name}/{v}: CSV {csv_vals} differs from results.json")
        if compared:
            for norm, (bk, ck, pk) in ((0, ("b", "c", "p")), (1, ("b_norm", "c_norm", "p_norm"))):
                a, b = right["model"][norm], right["compared"][norm]
                bb = sum(x and not y for x, y in zip(a, b))
                cc = sum(y and not x for x, y in zip(a, b))
                m = t["mcnemar"]
                if (m[bk], m[ck]) != (bb, cc) or abs(m[pk] - mcnemar_exact(bb, cc)) > 1e-12:
                    fail(f"{name}: McNemar {m}, recounted b={bb} c={cc} "
                         f"p={mcnemar_exact(bb, cc)}")
                row = rows[(name, "compared")]
                if (int(row["mcnemar_" + bk]), int(row["mcnemar_" + ck])) != (bb, cc):
                    fail(f"{name}: CSV McNemar counts differ")
                if not norm:
                    all_b, all_c = all_b + bb, all_c + cc
    for v in variants:
        avg = sum(a for a, _ in accs[v]) / len(tasks)
        if abs(res["average"][v]["acc"] - avg) > 1e-12:
            fail(f"average {v}: {res['average'][v]['acc']}, mean of tasks {avg}")
    if compared:
        m = res["mcnemar_all"]
        if (m["b"], m["c"]) != (all_b, all_c) or abs(m["p"] - mcnemar_exact(all_b, all_c)) > 1e-12:
            fail(f"all items: McNemar {m}, recounted b={all_b} c={all_c}")
        if all_b + all_c == 0:
            fail("the adapter changed no answer: the comparison was not exercised")
        print(f"McNemar over all items: b={all_b} c={all_c} p={m['p']:.4g}")
    return res


def suite_case(label, model, tasks, work, b_std):
    """Runs `tasks` as a suite with --compare against a random LoRA adapter (B large enough to
    change answers) and checks everything against the recount. Returns (suite, adapter)."""
    cfg, _ = load_model(model)
    targets = ["q_proj", "v_proj", "o_proj", "down_proj"]
    lora = lora_init(cfg, 4, targets, seed=11, b_std=b_std)
    adapter = write_peft_adapter(os.path.join(work, label + "_adapter"), lora, r=4,
                                 lora_alpha=8.0, lora_dropout=0.0, target_modules=targets,
                                 bias="none", use_rslora=False, fan_in_fan_out=False)
    suite = os.path.join(work, label + "_suite.json")
    with open(suite, "w") as f:
        f.write("// written by check_suite.py\n" + json.dumps({"name": "three", "tasks": [
            dict({"name": n, "format": fm, "path": p, "limit": l}, **({"gold": g} if g else {}))
            for n, fm, p, g, l in tasks]}, indent=1))
    out = os.path.join(work, label + "_out")
    p = run(["eval", model, "--suite", suite, "--compare", adapter, "--out-dir", out])
    check_results(out, suite, tasks, compared=True)
    for name, *_ in tasks:
        if name not in p.stdout:
            fail(f"{label}: the table does not list {name}:\n{p.stdout}")
    print(p.stdout)

    # the suite scores a task exactly as eval --mcq scores its file
    name, fmt, path, _, limit = tasks[-1]
    single = os.path.join(work, label + "_single.jsonl")
    run(["eval", model, "--mcq", path, "--format", fmt, "--limit", str(limit), "--out", single])
    a = [json.loads(l)["loglikelihoods"] for l in open(single)]
    b = [json.loads(l)["loglikelihoods"] for l in open(os.path.join(out, name + ".jsonl"))]
    if a != b:
        fail(f"{label}/{name}: the suite's log-likelihoods differ from eval --mcq's")
    return suite, adapter


def main():
    check_mcnemar_c()
    work = work_dir("suite")
    sample = sample_benchmarks(os.path.join(work, "sample"), n=24)
    # lm_head x8: with a fresh_model's flat logits no adapter changes an answer (see sharpen_head)
    model = sharpen_head(fresh_model(os.path.join(work, "random_llama"), LLAMA), 8.0)
    gold = pubmedqa_gold(sample, os.path.join(work, "sample"))
    knowledge = os.path.join(sample["mmlu"], "clinical_knowledge_test.csv")
    tasks = [("pubmedqa", "pubmedqa", sample["pubmedqa"], gold, 12),
             ("medmcqa", "medmcqa", sample["medmcqa"], None, 24),
             ("mmlu_clinical_knowledge", "mmlu", knowledge, None, 12)]
    suite, adapter = suite_case("random_llama", model, tasks, work, b_std=0.8)

    shared = shared_or_none()
    if shared:
        paths = dataset_paths(shared)
        shared_anatomy = os.path.join(paths["mmlu"], "anatomy_test.csv")
        shared_tasks = [("pubmedqa", "pubmedqa", paths["pubmedqa"],
                         os.path.join(shared, "data", "pubmedqa", "test_ground_truth.json"), 12),
                        ("medmcqa", "medmcqa", paths["medmcqa"], None, 25),
                        ("mmlu_anatomy", "mmlu", shared_anatomy, None, 25)]
        suite_case("tinystories-656k", os.path.join(shared, "models", "tinystories-656k"),
                   shared_tasks, work, b_std=0.8)
        # the example suite: the leaderboard's nine tasks, run from the repository root
        example = json.loads(strip_comments(
            open(os.path.join(REPO, "configs", "medical_suite.json")).read()))
        got = {t["name"]: t["format"] for t in example["tasks"]}
        if got != LEADERBOARD:
            fail(f"configs/medical_suite.json lists {got}, expected {LEADERBOARD}")
        for t in example["tasks"]:
            t["limit"] = 2
        small = os.path.join(work, "medical_suite_2.json")
        json.dump(example, open(small, "w"))
        out2 = os.path.join(work, "out2")
        run(["eval", os.path.join(shared, "models", "stories260K"), "--suite", small,
             "--out-dir", out2], cwd=REPO)
        tasks2 = [(t["name"], t["format"], os.path.join(REPO, t["path"]),
                   os.path.join(REPO, t["gold"]) if "gold" in t else None, 2)
                  for t in example["tasks"]]
        check_results(out2, small, tasks2, compared=False)
        print("configs/medical_suite.json: 9 tasks, 2 items each, checked")

    # refusals
    def bad(name, obj):
        path = os.path.join(work, name + ".json")
        json.dump(obj, open(path, "w"))
        return path
    t0 = {"name": "a", "format": "mmlu", "path": knowledge, "limit": 1}
    expect_error(["eval", model, "--suite", bad("unknown_key", {"tasks": [t0], "colour": 1})],
                 "unknown_key.json", "colour")
    expect_error(["eval", model, "--suite", bad("no_tasks", {"tasks": []})], "no_tasks.json", "tasks")
    expect_error(["eval", model, "--suite", bad("dup", {"tasks": [t0, t0]})], "dup.json", "tasks.1.name")
    expect_error(["eval", model, "--suite", bad("missing", {"tasks": [dict(t0, path=os.path.join(work, "nope.csv"))]})],
                 "missing.json", "nope.csv")
    expect_error(["eval", model, "--suite", bad("badname", {"tasks": [dict(t0, name="a/b")]})],
                 "badname.json", "tasks.0.name")
    expect_error(["eval", model, "--suite", suite, "--compare", os.path.join(work, "no_adapter")],
                 "no_adapter", only=False)
    for args in (["--mcq", knowledge, "--compare", adapter], ["--suite", suite, "--limit", "3"]):
        r = run(["eval", model] + args, expect=2)
        print(f"ok: usage error: {r.stderr.strip().splitlines()[-1]}")
    print("OK")


if __name__ == "__main__":
    main()
