#!/usr/bin/env bash
# Accuracy of SmolLM2-135M-Instruct (Q4_1 GGUF) on the medical multiple-choice benchmarks in
# ../shared/data, scored by `medtune eval --mcq` as lm-evaluation-harness scores them (0-shot,
# log-likelihood; prompts in docs/eval.md). Reproduces the table of docs/eval.md.
# usage: bench/eval_smollm2.sh [BUILD_DIR] [OUT_DIR]
# Item counts (0 = all): PUBMEDQA_LIMIT (default 0: the 500 official test PMIDs),
# MEDQA_LIMIT (200), MEDMCQA_LIMIT (500), MMLU_LIMIT (50 per subject, 6 subjects).
# ADAPTER=DIR scores the model with a LoRA adapter (e.g. a medtune run's adapter/).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build}"
out="${2:-$root/build/eval_smollm2}"
shared="${MEDTUNE_SHARED:-$root/../shared}"
model="${MEDTUNE_CACHE:-$root/.cache}/SmolLM2-135M-Instruct.Q4_1.gguf"
[ -f "$model" ] || { echo "eval_smollm2: $model is absent (tools/fetch_smollm2.sh)" >&2; exit 77; }
[ -d "$shared/data" ] || { echo "eval_smollm2: $shared/data is absent" >&2; exit 77; }
# On a busy 2-core box spinning OpenMP workers wait on descheduled peers; sleeping is faster.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
mkdir -p "$out"
data="$shared/data"

run() {  # name, then eval arguments
    local name="$1"
    shift
    echo "eval_smollm2: $name ..." >&2
    "$build/medtune" eval "$model" ${ADAPTER:+--adapter "$ADAPTER"} "$@" --json --out "$out/$name.jsonl" > "$out/$name.json"
}

run pubmedqa --mcq "$data/pubmedqa/ori_pqal.json" --gold "$data/pubmedqa/test_ground_truth.json" \
    --format pubmedqa --limit "${PUBMEDQA_LIMIT:-0}"
run medqa --mcq "$data/medqa/phrases_no_exclude_test.jsonl" --format medqa \
    --limit "${MEDQA_LIMIT:-200}"
run medmcqa --mcq "$data/medmcqa/dev.json" --format medmcqa --limit "${MEDMCQA_LIMIT:-500}"
run mmlu_medical --mcq "$data/mmlu_medical/test" --format mmlu --limit "${MMLU_LIMIT:-50}"

python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
rows = [("PubMedQA (PQA-L test)", "pubmedqa"), ("MedQA (USMLE, 4 options, test)", "medqa"),
        ("MedMCQA (dev)", "medmcqa"), ("MMLU medical (6 subjects, test)", "mmlu_medical")]
print("| benchmark | n | acc | 95% CI | acc_norm | 95% CI | s/item |")
print("|---|---:|---:|---|---:|---|---:|")
for label, name in rows:
    d = json.load(open(os.path.join(out, name + ".json")))
    print(f"| {label} | {d['n']} | {d['accuracy']:.3f} | [{d['ci95'][0]:.3f}, {d['ci95'][1]:.3f}] "
          f"| {d['accuracy_norm']:.3f} | [{d['ci95_norm'][0]:.3f}, {d['ci95_norm'][1]:.3f}] "
          f"| {d['seconds'] / d['n']:.2f} |")
PY
