#!/usr/bin/env bash
# Multiple-choice scoring speed, side by side in one run: the full forward pass over every
# position (`eval --mcq --full-forward`, the path before the KV-cache scorer) against the
# default KV-cache path (prompt once, choices as branches, logits only where scored), on the
# first N questions of MedQA (4 options) or PubMedQA (the 500 test PMIDs, 3 options) with
# SmolLM2-135M-Instruct (Q4_1 GGUF), with OMP_NUM_THREADS=1 and then 2 (BENCH_THREADS).
# Prints items/s by wall clock (the scoring loop, from eval's JSON) and by CPU time (user + sys
# of the whole process, model load included), the load average before and after, and checks
# that both paths give the same per-item log-likelihoods (within 1e-5 relative) and
# predictions. On a shared machine wall clock follows the other jobs; CPU time is the
# comparable number.
# usage: bench/bench_mcq.sh [BUILD_DIR] [N] [medqa|pubmedqa]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build}"
n="${2:-20}"
format="${3:-medqa}"
shared="${MEDTUNE_SHARED:-$root/../shared}"
model="${MEDTUNE_CACHE:-$root/.cache}/SmolLM2-135M-Instruct.Q4_1.gguf"
[ -f "$model" ] || { echo "bench_mcq: $model is absent (tools/fetch_smollm2.sh)" >&2; exit 77; }
case "$format" in
    medqa) data=("$shared/data/medqa/phrases_no_exclude_test.jsonl") ;;
    pubmedqa) data=("$shared/data/pubmedqa/ori_pqal.json"
                    --gold "$shared/data/pubmedqa/test_ground_truth.json") ;;
    *) echo "bench_mcq: format $format is not medqa or pubmedqa" >&2; exit 2 ;;
esac
[ -f "${data[0]}" ] || { echo "bench_mcq: ${data[0]} is absent" >&2; exit 77; }
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

uptime > "$out/load.before"
for threads in ${BENCH_THREADS:-1 2}; do
    for path in full kv; do
        flag=()
        [ "$path" = full ] && flag=(--full-forward)
        OMP_NUM_THREADS=$threads /usr/bin/time -f "%U %S" -o "$out/$path.$threads.time" \
            "$build/medtune" eval "$model" --mcq "${data[@]}" --format "$format" --limit "$n" \
            "${flag[@]}" --json --out "$out/$path.$threads.jsonl" > "$out/$path.$threads.json"
    done
done
uptime > "$out/load.after"

python3 - "$out" "$n" "$format" ${BENCH_THREADS:-1 2} <<'PY'
import json, os, sys
out, n, fmt, threads = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
load = lambda w: open(os.path.join(out, "load." + w)).read().split("load average:")[1].strip()
print(f"{fmt}, {n} items, SmolLM2-135M-Instruct Q4_1; load average before: {load('before')}, "
      f"after: {load('after')}")
print("| threads | path | wall s | items/s (wall) | CPU s | items/CPU-s |")
print("|---:|---|---:|---:|---:|---:|")
bad = False
summary = []
for t in threads:
    rows = {}
    for path in ("full", "kv"):
        s = json.load(open(os.path.join(out, f"{path}.{t}.json")))
        user, sys_ = map(float, open(os.path.join(out, f"{path}.{t}.time")).read().split()[-2:])
        rows[path] = (s["seconds"], user + sys_)
    for path, label in (("full", "full forward (before)"), ("kv", "KV cache (now)")):
        wall, cpu = rows[path]
        print(f"| {t} | {label} | {wall:.1f} | {n / wall:.2f} | {cpu:.1f} | {n / cpu:.2f} |")
    a = [json.loads(l) for l in open(os.path.join(out, f"full.{t}.jsonl"))]
    b = [json.loads(l) for l in open(os.path.join(out, f"kv.{t}.jsonl"))]
    worst = max(abs(x - y) / max(1.0, abs(x)) for p, q in zip(a, b)
                for x, y in zip(p["loglikelihoods"], q["loglikelihoods"]))
    same = len(a) == len(b) == n and all(
        p["chosen"] == q["chosen"] and p["chosen_norm"] == q["chosen_norm"] for p, q in zip(a, b))
    summary.append(f"threads {t}: speed-up {rows['full'][0] / rows['kv'][0]:.2f}x wall, "
                   f"{rows['full'][1] / rows['kv'][1]:.2f}x CPU; max relative |ll diff| "
                   f"{worst:.1e}, same predictions: {same}")
    bad |= worst > 1e-5 or not same
print("\n".join(summary))
if bad:
    sys.exit("bench_mcq: the two paths disagree")
PY
