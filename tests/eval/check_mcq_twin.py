"""medtune eval --mcq against lm-evaluation-harness-style scoring on the PyTorch twin: for a
sample of items of each benchmark, every choice's summed log-likelihood within 1e-3, the
continuation token counts, gold answers, predictions and the reported accuracy. Prompts and
tokenization are rebuilt independently here (json/csv modules, HF tokenizers). Always: a
random-weight GQA llama and the SmolLM2 GGUF (when tools/bootstrap.sh fetched it) on sample
benchmark files written from the quickstart data; with ../shared also stories260K and
tinystories-656k on the real benchmarks."""
import json
import math
import os
import statistics

from eval_ref import (Scorer, dataset_paths, env, fail, read_items, run, work_dir)
from eval_lib import LLAMA, fresh_model, sample_benchmarks
from fresh_lib import shared_or_none

TOL = 1e-3


def wilson_by_bisection(k, n, z=1.959963984540054):
    """The interval of p where the score test |k/n - p| <= z sqrt(p (1 - p) / n) holds, found
    numerically (not from the closed form medtune uses)."""
    ph = k / n

    def inside(p):
        return (ph - p) ** 2 <= z * z * p * (1 - p) / n

    def edge(a, b):  # a inside, b outside
        for _ in range(200):
            m = (a + b) / 2
            a, b = (m, b) if inside(m) else (a, m)
        return a

    lo = 0.0 if inside(0.0) else edge(ph, 0.0)
    hi = 1.0 if inside(1.0) else edge(ph, 1.0)
    return lo, hi


def check_stats(label, summary, correct, correct_norm, n):
    for key, err_key, k in (("ci95", "stderr", correct), ("ci95_norm", "stderr_norm", correct_norm)):
        ref = wilson_by_bisection(k, n)
        if max(abs(a - b) for a, b in zip(summary[key], ref)) > 1e-9:
            fail(f"{label}: {key} {summary[key]}, score-test interval {ref}")
        se = statistics.stdev([1.0] * k + [0.0] * (n - k)) / math.sqrt(n) if n > 1 else 0.0
        if abs(summary[err_key] - se) > 1e-12:
            fail(f"{label}: {err_key} {summary[err_key]}, expected {se}")


def check(label, model, fmt, path, limit, work, extra=(), add_special=False, scorer=None):
    out = os.path.join(work, label.replace("/", "_") + ".jsonl")
    p = run(["eval", model, "--mcq", path, "--format", fmt, "--limit", str(limit),
             "--out", out, "--json"] + list(extra))
    summary = json.loads(p.stdout)
    got = [json.loads(l) for l in open(out)]
    items, _ = read_items(fmt, path, limit)
    if len(got) != len(items) or summary["n"] != len(items):
        fail(f"{label}: {len(got)} results, summary n={summary['n']}, reference {len(items)} items")
    scorer = scorer or Scorer(model, add_special)
    worst = 0.0
    correct = correct_norm = 0
    for g, it in zip(got, items):
        if g["id"] != it["id"] or g["gold"] != it["gold"] or g["choices"] != it["choices"]:
            fail(f"{label}: item {it['id']}: got id {g['id']} gold {g['gold']} choices "
                 f"{g['choices']}, reference gold {it['gold']} choices {it['choices']}")
        ref = scorer.score(it["context"], it["choices"], summary["max_len"])
        for c, (ll, ntok) in enumerate(ref):
            d = abs(g["loglikelihoods"][c] - ll)
            worst = max(worst, d)
            if d > TOL or g["continuation_tokens"][c] != ntok:
                fail(f"{label}: item {it['id']} choice {it['choices'][c]!r}: ll "
                     f"{g['loglikelihoods'][c]:.6f} ({g['continuation_tokens'][c]} tokens), "
                     f"twin {ll:.6f} ({ntok} tokens)")
        lls = [ll for ll, _ in ref]
        lens = [len(c) for c in it["choices"]]
        # the prediction follows the C log-likelihoods (ties within TOL could flip otherwise)
        mine = g["loglikelihoods"]
        chosen = max(range(len(mine)), key=lambda c: (mine[c], -c))
        norm = [mine[c] / lens[c] for c in range(len(mine))]
        chosen_norm = max(range(len(norm)), key=lambda c: (norm[c], -c))
        if g["chosen"] != chosen or g["chosen_norm"] != chosen_norm:
            fail(f"{label}: item {it['id']}: chosen {g['chosen']}/{g['chosen_norm']}, "
                 f"expected {chosen}/{chosen_norm} from {mine}")
        ref_chosen = max(range(len(lls)), key=lambda c: (lls[c], -c))
        if ref_chosen != chosen and abs(lls[ref_chosen] - lls[chosen]) > TOL:
            fail(f"{label}: item {it['id']}: twin picks {ref_chosen}, medtune {chosen}")
        correct += chosen == it["gold"]
        correct_norm += chosen_norm == it["gold"]
    n = len(items)
    if abs(summary["accuracy"] - correct / n) > 1e-12 or \
            abs(summary["accuracy_norm"] - correct_norm / n) > 1e-12:
        fail(f"{label}: accuracy {summary['accuracy']}/{summary['accuracy_norm']}, "
             f"items say {correct / n}/{correct_norm / n}")
    check_stats(label, summary, correct, correct_norm, n)
    trunc = sum(1 for g in got if g["truncated"] > 0)
    print(f"{label}: {n} items, max |ll diff| {worst:.2e}, acc {summary['accuracy']:.3f}, "
          f"acc_norm {summary['accuracy_norm']:.3f}, truncated {trunc}")
    return scorer


def main():
    work = work_dir("mcq_twin")
    sample = sample_benchmarks(os.path.join(work, "sample"))
    model = fresh_model(os.path.join(work, "random_llama"), LLAMA)
    scorer = None
    for fmt, path in sample.items():
        scorer = check(f"random_llama/{fmt}", model, fmt, path, 6, work, scorer=scorer)
    # the context cut from the left
    check("random_llama/pubmedqa-max-len-48", model, "pubmedqa", sample["pubmedqa"], 3, work,
          ["--max-len", "48"], scorer=scorer)

    shared = shared_or_none()
    if shared:
        paths = dataset_paths(shared)
        models = os.path.join(shared, "models")
        for name in ("stories260K", "tinystories-656k"):
            model = os.path.join(models, name)
            scorer = None
            for fmt, path in paths.items():
                scorer = check(f"{name}/{fmt}", model, fmt, path, 5, work, scorer=scorer)
        # the context cut from the left, BOS added like the harness's add_bos_token=True
        model = os.path.join(models, "stories260K")
        check("stories260K/pubmedqa-max-len-96", model, "pubmedqa", paths["pubmedqa"], 3, work,
              ["--max-len", "96"])
        check("stories260K/medqa-add-special", model, "medqa", paths["medqa"], 3, work,
              ["--add-special"], add_special=True)

    gguf = os.path.join(env("MEDTUNE_CACHE", ""), "SmolLM2-135M-Instruct.Q4_1.gguf")
    if not os.path.exists(gguf):
        print(f"SmolLM2 part skipped: {gguf} is absent (tools/fetch_smollm2.sh)")
        return
    scorer = None
    for fmt, path in sample.items():
        if fmt == "mmlu":
            path = os.path.join(path, "professional_medicine_test.csv")
        scorer = check(f"smollm2/{fmt}", gguf, fmt, path, 2, work, scorer=scorer)
    print("OK")


if __name__ == "__main__":
    main()
