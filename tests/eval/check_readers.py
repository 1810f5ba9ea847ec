"""medtune's benchmark readers against Python's json and csv modules: for every file of the
four benchmarks, the same items (ids, prompts built independently here, choices, gold) and the
same count of skipped records; then hand-made files with malformed records and CSV quoting
corner cases. The benchmark files are small samples in each format written here from the
quickstart data, and the real benchmarks of ../shared when it is there."""
import json
import os
import subprocess

from eval_ref import dataset_paths, env, fail, read_items, work_dir
from eval_lib import pubmedqa_gold, sample_benchmarks
from fresh_lib import shared_or_none


def reader_bin():
    return os.path.join(env("MEDTUNE_TEST_BIN", "."), "test_eval_readers")


def c_items(fmt, path, limit=0, gold=None):
    args = [reader_bin(), fmt, path, str(limit)] + ([gold] if gold else [])
    p = subprocess.run(args, capture_output=True, text=True)
    if p.returncode != 0:
        fail(f"{' '.join(args)} exited {p.returncode}: {p.stderr.strip()}")
    lines = [json.loads(l) for l in p.stdout.splitlines()]
    return lines[:-1], lines[-1]


def compare(label, fmt, path, limit=0, gold=None):
    got, summary = c_items(fmt, path, limit, gold)
    ref, skipped = read_items(fmt, path, limit, gold)
    if len(got) != len(ref) or summary["n"] != len(ref) or summary["skipped"] != skipped:
        fail(f"{label}: medtune read {summary['n']} items / {summary['skipped']} skipped, "
             f"Python {len(ref)} / {skipped}")
    for g, r in zip(got, ref):
        if g != r:
            for k in r:
                if g.get(k) != r[k]:
                    fail(f"{label}: item {r['id']}: {k} differs:\nmedtune {g.get(k)!r}\n"
                         f"python  {r[k]!r}")
    print(f"{label}: {len(ref)} items, {skipped} skipped: identical")
    return summary


def main():
    work = work_dir("readers")
    paths = sample_benchmarks(os.path.join(work, "sample"))
    for fmt, path in paths.items():
        compare(f"sample {fmt}", fmt, path)
    for name in sorted(os.listdir(paths["mmlu"])):
        compare(f"sample mmlu/{name}", "mmlu", os.path.join(paths["mmlu"], name))
    compare("sample mmlu limit 4 per file", "mmlu", paths["mmlu"], limit=4)
    compare("sample pubmedqa + ground truth", "pubmedqa", paths["pubmedqa"],
            gold=pubmedqa_gold(paths, work))
    shared = shared_or_none()
    if shared:
        paths = dataset_paths(shared)
        for fmt, path in paths.items():
            compare(fmt, fmt, path)
        mmlu = paths["mmlu"]
        for name in sorted(os.listdir(mmlu)):
            compare(f"mmlu/{name}", "mmlu", os.path.join(mmlu, name))
        compare("mmlu limit 7 per file", "mmlu", mmlu, limit=7)
        pq = os.path.join(shared, "data", "pubmedqa")
        compare("pubmedqa ori_pqal + test_ground_truth", "pubmedqa",
                os.path.join(pq, "ori_pqal.json"),
                gold=os.path.join(pq, "test_ground_truth.json"))
        compare("pubmedqa ori_pqal all", "pubmedqa", os.path.join(pq, "ori_pqal.json"))

    medqa = os.path.join(work, "medqa.jsonl")
    good = {"question": "Q?", "options": {"A": "a", "B": "b", "C": "c", "D": "d"},
            "answer_idx": "C"}
    with open(medqa, "w", newline="") as f:
        f.write("{not json\n")
        f.write(json.dumps({**good, "answer_idx": "E"}) + "\n")
        f.write("\n  \n")
        f.write(json.dumps(good) + "\r\n")
        f.write(json.dumps({**good, "options": {"B": "b", "A": "a"}}) + "\n")
        f.write(json.dumps(good) + ' trailing\n')
        f.write(json.dumps({**good, "question": "Five\u2009options", "options":
                            {"A": "a", "B": "b", "C": "c", "D": "d", "E": "e"}, "answer_idx": "E"}))
    s = compare("malformed medqa", "medqa", medqa)
    if not s["first_skip"].endswith("medqa.jsonl:1: not valid JSON"):
        fail(f"first skipped record reported as {s['first_skip']!r}")

    medmcqa = os.path.join(work, "medmcqa.jsonl")
    rec = {"question": "Q", "opa": "1", "opb": "2", "opc": "3", "opd": "4", "cop": 4, "id": "x"}
    with open(medmcqa, "w") as f:
        for bad in ({"cop": 0}, {"cop": 2.5}, {"opc": None}, {"cop": "1"}, {"id": 7}, {}):
            f.write(json.dumps({**rec, **bad}) + "\n")
    compare("malformed medmcqa", "medmcqa", medmcqa)

    pubmed = os.path.join(work, "pubmedqa.json")
    base = {"QUESTION": "Q?", "CONTEXTS": ["c1", "c2"], "final_decision": "no"}
    with open(pubmed, "w") as f:
        json.dump({"1": base, "2": {**base, "final_decision": "perhaps"}, "3": [1],
                   "4": {**base, "CONTEXTS": ["x", 5]}, "5": {**base, "CONTEXTS": []}}, f)
    compare("malformed pubmedqa", "pubmedqa", pubmed)

    csv_path = os.path.join(work, "quirky_test.csv")
    with open(csv_path, "w", newline="") as f:
        f.write('"multi\nline ""quoted"" question  ",a,"b,with comma",c,d,B\r\n')
        f.write('  spaced question\t,x"y,"z"tail,w,v,A\n')
        f.write('\n')
        f.write('short,row,D\n')
        f.write('q,1,2,3,4,E\n')
        f.write('\u00a0nbsp question\u2003,\u00e9,\u4e2d,3,4,C\r')
        f.write('last,1,2,3,4,D')
    compare("csv corner cases", "mmlu", csv_path)
    print("OK")


if __name__ == "__main__":
    main()
