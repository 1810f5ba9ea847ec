#!/usr/bin/env bash
# Multiple-choice scoring speed, side by side in one run: the full forward pass over every
# position (`eval --mcq --full-forward`, the path before the KV-cache scorer) against the
# default KV-cache path (prompt once, choices as branches, logits only where scored), on the
# first N MedQA test questions with SmolLM2-135M-Instruct (Q4_1 GGUF). Prints items/s by wall
# clock and by CPU time (user + sys of the whole process, model load included), and checks that
# both paths give the same per-item log-likelihoods (within 1e-5 relative) and predictions.
# On a shared machine wall clock follows the other jobs; CPU time is the comparable number.
# usage: bench/bench_mcq.sh [BUILD_DIR] [N]   (OMP_NUM_THREADS defaults to 1 here)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build}"
n="${2:-20}"
shared="${MEDTUNE_SHARED:-$root/../shared}"
model="${MEDTUNE_CACHE:-$root/.cache}/SmolLM2-135M-Instruct.Q4_1.gguf"
[ -f "$model" ] || { echo "bench_mcq: $model is absent (tools/fetch_smollm2.sh)" >&2; exit 77; }
data="$shared/data/medqa/phrases_no_exclude_test.jsonl"
[ -f "$data" ] || { echo "bench_mcq: $data is absent" >&2; exit 77; }
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

for path in full kv; do
    flag=()
    [ "$path" = full ] && flag=(--full-forward)
    /usr/bin/time -f "%U %S" -o "$out/$path.time" "$build/medtune" eval "$model" --mcq "$data" \
        --format medqa --limit "$n" "${flag[@]}" --json --out "$out/$path.jsonl" > "$out/$path.json"
done

python3 - "$out" "$n" "$OMP_NUM_THREADS" <<'PY'
import json, os, sys
out, n, threads = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows = {}
for path in ("full", "kv"):
    s = json.load(open(os.path.join(out, path + ".json")))
    user, sys_ = map(float, open(os.path.join(out, path + ".time")).read().split()[-2:])
    rows[path] = (s["seconds"], user + sys_)
a = [json.loads(l) for l in open(os.path.join(out, "full.jsonl"))]
b = [json.loads(l) for l in open(os.path.join(out, "kv.jsonl"))]
worst = max(abs(x - y) / max(1.0, abs(x)) for p, q in zip(a, b)
            for x, y in zip(p["loglikelihoods"], q["loglikelihoods"]))
same = all(p["chosen"] == q["chosen"] and p["chosen_norm"] == q["chosen_norm"] for p, q in zip(a, b))
print(f"MedQA, {n} items, SmolLM2-135M-Instruct Q4_1, OMP_NUM_THREADS={threads}")
print("| path | wall s | items/s (wall) | CPU s | items/CPU-s |")
print("|---|---:|---:|---:|---:|")
for path, label in (("full", "full forward (before)"), ("kv", "KV cache (now)")):
    wall, cpu = rows[path]
    print(f"| {label} | {wall:.1f} | {n / wall:.2f} | {cpu:.1f} | {n / cpu:.2f} |")
print(f"speed-up: {rows['full'][0] / rows['kv'][0]:.2f}x wall, {rows['full'][1] / rows['kv'][1]:.2f}x CPU")
print(f"max relative |ll diff| {worst:.1e}, same predictions: {same}")
if worst > 1e-5 or not same:
    sys.exit("bench_mcq: the two paths disagree")
PY
