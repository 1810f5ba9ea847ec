#!/usr/bin/env bash
# Data-parallel training on this machine, in one invocation: 2 MPI ranks x 1 thread next to
# 1 process x 2 threads, the same global batch (micro_batch 2 x grad_accum 2 x 256 tokens for
# one process, 2 x 1 x 256 per rank), SmolLM2-135M-Instruct (the GGUF tools/bootstrap.sh
# fetches), LoRA r=16 alpha=32 on all 7 projections, PubMed abstracts from ../shared.
# Prints tok/s (median over the steps after the first) of both, the gradient reduction's
# milliseconds and megabytes per step (rank 0, from metrics.jsonl: waiting for the slower rank
# included), whether the two adapters are byte-identical, and the reduction alone
# (bench_reduce: ranks lined up first) on the SmolLM2, 1B and 7B gradient sizes.
# Run on an otherwise idle machine: figures are wall-clock.
# usage: bench/bench_mpi.sh [STEPS] [BUILD_DIR]   (after tools/bootstrap.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-8}
build=${2:-build}
model=.cache/SmolLM2-135M-Instruct.Q4_1.gguf
shared=${MEDTUNE_SHARED:-../shared}
py=.venv/bin/python
[ -x "$py" ] || py=python3
[ -f "$model" ] || { echo "bench_mpi: $model is absent: run tools/bootstrap.sh" >&2; exit 1; }
command -v mpirun >/dev/null || { echo "bench_mpi: mpirun is absent (openmpi-bin)" >&2; exit 1; }
work=$(mktemp -d /tmp/bench_mpi.XXXXXX)
trap 'rm -rf "$work"' EXIT

cat > "$work/prep.json" <<JSON
{"tokenizer": "$PWD/$model", "inputs": [{"path": "$shared/data/pubmed_xml/*.xml",
 "format": "pubmed-xml"}], "val_fraction": 0.05, "out_dir": "$work/shards"}
JSON
"$build/medtune" prep "$work/prep.json" >/dev/null 2>&1

conf() {  # name grad_accum threads
  cat > "$work/$1.json" <<JSON
{"model": "$PWD/$model", "data": {"train": "$work/shards"},
 "lora": {"r": 16, "alpha": 32}, "optim": {"lr": 1e-4},
 "batch": {"micro_batch": 2, "seq_len": 256, "grad_accum": $2}, "steps": $steps,
 "shuffle": true, "seed": 1, "threads": $3, "eval_every": 0, "save_every": 0,
 "out_dir": "$work/$1"}
JSON
}
conf one 2 2
conf ranks 1 1
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
"$build/medtune" train "$work/one.json" 2>/dev/null
mpirun --allow-run-as-root --oversubscribe --bind-to core --map-by core -np 2 \
  "$build/medtune" train "$work/ranks.json" 2>/dev/null

$py - "$work" <<'PY'
import json, statistics, sys
work = sys.argv[1]
def rows(name):
    return [json.loads(l) for l in open(f"{work}/{name}/metrics.jsonl") if '"loss"' in l]
one, ranks = rows("one"), rows("ranks")
tps = lambda rs: statistics.median(r["tok_per_s"] for r in rs[1:])
print(f"{'run':<28} {'tok/s':>8} {'reduce ms/step':>15} {'reduce MB/step':>15}")
print(f"{'1 process x 2 threads':<28} {tps(one):>8.1f} {'-':>15} {'-':>15}")
ms = statistics.median(r["comm_ms"] for r in ranks[1:])
mb = statistics.median(r["comm_mb"] for r in ranks[1:])
print(f"{'2 ranks x 1 thread':<28} {tps(ranks):>8.1f} {ms:>15.1f} {mb:>15.2f}")
same = open(f"{work}/one/adapter/adapter_model.safetensors", "rb").read() == \
    open(f"{work}/ranks/adapter/adapter_model.safetensors", "rb").read()
loss_same = [r["loss"] for r in one] == [r["loss"] for r in ranks]
print(f"losses identical: {loss_same}; adapters byte-identical: {same} "
      "(1 vs 2 threads per process: identical only where every op is thread-count independent)")
PY
echo "the reduction alone, 2 ranks (chain + broadcast, ranks lined up first):"
mpirun --allow-run-as-root --oversubscribe --bind-to core --map-by core -np 2 \
  "$build/bench_reduce" 10
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
