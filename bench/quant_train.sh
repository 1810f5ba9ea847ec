#!/usr/bin/env bash
# LoRA training on a frozen base kept in its stored type, next to PyTorch LoRA on fp32 in the
# same run: TinyLlama-1.1B shape (C 2048, F 5632, L 22, H 32, KV 4, V 32000, untied), random
# weights written as GGUF Q4_K, Q8_0, BF16 and F32 (bench/quant_models.py), batch 1 x 256,
# r=16 on all seven projections, 2 threads. tok/s is the median step; peak RSS is
# /usr/bin/time -v's maximum resident set size of the whole process.
# With --7b, also the Llama-2-7B shape in Q4_K (C 4096, F 11008, L 32, V 32000; a 3.9 GB file,
# deleted afterwards unless --keep) with recompute on (`recompute: true`), its tok/s next to
# the FLOP ceiling: bench_train's own sgemm rate on the step's largest products, measured in
# the same process, over its model FLOPs per token (4 x the frozen matrices' weights for the
# forward products and their input gradients, plus LoRA, attention and the head).
# Each measurement is printed to stderr as it completes (with the load average), the table at
# the end; PyTorch runs after the first two types.
# usage: bench/quant_train.sh [--steps N] [--7b] [--keep] [--types "q4_k f32 q8_0 bf16" | none]
#   MEDTUNE_BUILD (default build): the build directory with bench_train
#   QUANT_BENCH_DIR (default .cache/bench-quant): where the model files are written and kept
set -euo pipefail
cd "$(dirname "$0")/.."
steps=2
big=0
keep=0
types="q4_k f32 q8_0 bf16"
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) steps=$2; shift 2 ;;
    --7b) big=1; shift ;;
    --keep) keep=1; shift ;;
    --types) types=$2; shift 2 ;;
    *) echo "usage: bench/quant_train.sh [--steps N] [--7b] [--keep] [--types LIST|none]" >&2; exit 2 ;;
  esac
done
. bench/quant_env.sh
export OMP_NUM_THREADS=2
tiny=(--hidden 2048 --intermediate 5632 --layers 22 --heads 32 --kv-heads 4 --head-dim 64
      --vocab 32000 --untied)

# Runs a command under /usr/bin/time -v; prints its JSON line with peak_rss_gb replaced by the
# maximum resident set size time measured.
timed() {
  local log
  log=$(mktemp)
  /usr/bin/time -v "$@" 2>"$log" | tail -n 1 | $py -c '
import json, re, sys
r = json.loads(sys.stdin.read())
m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(sys.argv[1]).read())
r["peak_rss_gb"] = int(m.group(1)) * 1024 / 1e9
print(json.dumps(r))' "$log"
  rm -f "$log"
}

results=()
# measure NAME COMMAND...: one timed run, kept for the table and echoed with the load now.
measure() {
  local name=$1 r
  shift
  r=$(timed "$@")
  echo "$name: $r (load $(uptime | sed 's/.*load average: //'))" >&2
  results+=("$name|$r")
}
[ "$types" = none ] && types=""
n=0
for t in $types; do
  f=$dir/tinyllama-$t.gguf
  $py bench/quant_models.py tinyllama "$t" "$f"
  measure "tinyllama $t" "$build/bench_train" --model "$f" --batch 1 --seq 256 --steps "$steps"
  n=$((n + 1))
  if [ "$n" = 2 ]; then
    measure "tinyllama pytorch fp32" "$py" bench/bench_torch_lora.py --threads 2 "${tiny[@]}" \
      --batch 1 --seq 256 --steps "$steps" --warmup 1
  fi
done
if [ "$big" = 1 ]; then
  f=$dir/llama2-7b-q4_k.gguf
  $py bench/quant_models.py llama2-7b q4_k "$f"
  measure "llama2-7b q4_k recompute" "$build/bench_train" --model "$f" --batch 1 --seq 256 \
    --steps "$steps" --recompute 1 --profile 0
  [ "$keep" = 1 ] || rm -f "$f"
fi
printf '%s\n' "${results[@]}" | $py -c '
import json, sys
rows = [line.split("|", 1) for line in sys.stdin.read().splitlines() if line]
f32 = next((json.loads(r)["tok_per_s"] for n, r in rows if n == "tinyllama f32"), None)
fmt = "{:<26} {:>7} {:>7} {:>9} {:>9} {:>12} {:>11}"
print(fmt.format("model", "tok/s", "vs f32", "sgemm GF", "ceiling", "peak RSS GB", "weights GB"))
for name, r in rows:
    r = json.loads(r)
    rel = "{:.2f}x".format(r["tok_per_s"] / f32) if f32 and "pytorch" not in name else ""
    # The ceiling: this process sgemm rate over the model FLOPs of a token (medtune rows).
    sg = r.get("sgemm_gflop_s")
    ceiling = "{:.1f}".format(sg / r["gflop_per_token"]) if sg else ""
    print(fmt.format(name, "{:.1f}".format(r["tok_per_s"]), rel, "{:.1f}".format(sg) if sg else "",
                     ceiling, "{:.2f}".format(r["peak_rss_gb"]),
                     "{:.2f}".format(r.get("weights_gb", float("nan")))))
'
