"""eval --mcq's KV-cache path (the default: the prompt once through the decoder, the choices'
remaining tokens as branches on top of it, logits only where scored) against the full forward
pass over every position (--full-forward, lm_plan): every choice's log-likelihood within 1e-5 (relative),
the same continuation token counts and the same predictions, item by item. Covers one-token
choices (" A".." D"), multi-token choices run as branches (the sample benchmarks' sentence
options; PubMedQA's " maybe" in a 512-token vocabulary), contexts cut from the left (--max-len),
BOS (--add-special) and a LoRA adapter, always on a random-weight GQA llama and the sample
benchmark files (eval_lib), with ../shared also on stories260K / tinystories-656k and the real
benchmarks, and SmolLM2-135M when it is in .cache. The twin test (eval_mcq_twin) checks both against
PyTorch; this one pins the two C paths to each other at a tolerance the twin cannot give."""
import json
import os
import sys

from eval_ref import HERE, dataset_paths, env, fail, run, work_dir
from eval_lib import LLAMA, fresh_model, sample_benchmarks
from fresh_lib import shared_or_none

sys.path.insert(0, os.path.join(HERE, "..", "train"))
from train_lib import write_peft_adapter  # noqa: E402
from llama import lora_init  # noqa: E402
from model_io import load_model  # noqa: E402

# Relative to the log-likelihood's size: the two paths sum the same float32 products in
# different orders (sgemm blocking over 512 positions), measured up to 1.2e-5 absolute on a
# -6.9 log-likelihood of a 512-token context, 1.7e-6 relative.
TOL = 1e-5


def close(x, y):
    return abs(x - y) <= TOL * max(1.0, abs(y))


def scored(model, fmt, path, limit, out, extra):
    run(["eval", model, "--mcq", path, "--format", fmt, "--limit", str(limit), "--out", out]
        + extra)
    return [json.loads(l) for l in open(out)]


def check(label, model, fmt, path, limit, work, extra=()):
    base = os.path.join(work, label.replace("/", "_"))
    kv = scored(model, fmt, path, limit, base + ".kv.jsonl", list(extra))
    full = scored(model, fmt, path, limit, base + ".full.jsonl", list(extra) + ["--full-forward"])
    if len(kv) != len(full) or not kv:
        fail(f"{label}: {len(kv)} items on the KV path, {len(full)} on the full path")
    worst, multi, trunc = 0.0, 0, 0
    for a, b in zip(kv, full):
        if a["id"] != b["id"] or a["continuation_tokens"] != b["continuation_tokens"] or \
                a["truncated"] != b["truncated"]:
            fail(f"{label}: item {a['id']}: KV path {a['continuation_tokens']} tokens, "
                 f"truncated {a['truncated']}; full path {b['id']} {b['continuation_tokens']}, "
                 f"{b['truncated']}")
        for c, (x, y) in enumerate(zip(a["loglikelihoods"], b["loglikelihoods"])):
            worst = max(worst, abs(x - y))
            if not close(x, y):
                fail(f"{label}: item {a['id']} choice {a['choices'][c]!r}: KV path {x:.8f}, "
                     f"full forward {y:.8f}")
        if a["chosen"] != b["chosen"] or a["chosen_norm"] != b["chosen_norm"]:
            fail(f"{label}: item {a['id']}: KV path picks {a['chosen']}/{a['chosen_norm']}, "
                 f"full path {b['chosen']}/{b['chosen_norm']}")
        multi += sum(1 for n in a["continuation_tokens"] if n > 1)
        trunc += a["truncated"] > 0
    print(f"{label}: {len(kv)} items, {multi} multi-token choices, {trunc} truncated, "
          f"max |ll diff| {worst:.1e}")
    return multi, trunc


def with_adapter(label, model, work, paths, seed):
    """A PEFT adapter with B nonzero on every projection, so the LoRA branch changes each
    log-likelihood, scored on PubMedQA and MedMCQA."""
    cfg, _ = load_model(model)
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    lora = lora_init(cfg, 4, targets, seed=seed, b_std=0.05)
    adapter = write_peft_adapter(os.path.join(work, label + "_adapter"), lora, r=4,
                                 lora_alpha=8.0, lora_dropout=0.0, target_modules=targets,
                                 bias="none", use_rslora=False, fan_in_fan_out=False)
    check(f"{label}+lora/pubmedqa", model, "pubmedqa", paths["pubmedqa"], 3, work,
          ["--adapter", adapter])
    check(f"{label}+lora/medmcqa", model, "medmcqa", paths["medmcqa"], 3, work,
          ["--adapter", adapter])


def exercised(label, multi, trunc):
    if not multi or not trunc:
        fail(f"{label}: the cases did not exercise branches ({multi} multi-token choices) or "
             f"left truncation ({trunc} items)")


def main():
    work = work_dir("mcq_kv")
    sample = sample_benchmarks(os.path.join(work, "sample"))
    model = fresh_model(os.path.join(work, "random_llama"), LLAMA)
    multi = 0
    for fmt, path in sample.items():
        m, _ = check(f"random_llama/{fmt}", model, fmt, path, 4, work)
        multi += m
    _, trunc = check("random_llama/pubmedqa-max-len-48", model, "pubmedqa", sample["pubmedqa"],
                     4, work, ["--max-len", "48"])
    check("random_llama/medqa-add-special", model, "medqa", sample["medqa"], 3, work,
          ["--add-special"])
    exercised("random_llama", multi, trunc)
    with_adapter("random_llama", model, work, sample, seed=5)

    shared = shared_or_none()
    if shared:
        paths = dataset_paths(shared)
        small = os.path.join(shared, "models", "stories260K")
        multi = 0
        # --limit is per file: 2 of each of mmlu's six subjects keeps the test near 30 s
        for fmt, path in paths.items():
            m, _ = check(f"stories260K/{fmt}", small, fmt, path, 2 if fmt == "mmlu" else 4, work)
            multi += m
        _, trunc = check("stories260K/pubmedqa-max-len-96", small, "pubmedqa",
                         paths["pubmedqa"], 4, work, ["--max-len", "96"])
        check("stories260K/medqa-add-special", small, "medqa", paths["medqa"], 3, work,
              ["--add-special"])
        exercised("stories260K", multi, trunc)
        with_adapter("tinystories-656k", os.path.join(shared, "models", "tinystories-656k"),
                     work, paths, seed=5)

    gguf = os.path.join(env("MEDTUNE_CACHE", ""), "SmolLM2-135M-Instruct.Q4_1.gguf")
    if not os.path.exists(gguf):
        print(f"SmolLM2 part skipped: {gguf} is absent (tools/fetch_smollm2.sh)")
        print("OK")
        return
    # the real benchmarks when they are here, else the sample: once is enough for ~30 s.
    # 10 MedQA questions: when the decoder's prompt pass summed attention and the head in
    # other orders than lm_plan, the 4th differed by 1.1e-5 relative (bench/bench_mcq.sh
    # failed on it); its prompt now runs lm_plan's kernels and gives the same bits.
    bench = paths if shared else sample
    check("smollm2/medqa", gguf, "medqa", bench["medqa"], 10, work)
    check("smollm2/pubmedqa", gguf, "pubmedqa", bench["pubmedqa"], 2, work)
    print("OK")


if __name__ == "__main__":
    main()
