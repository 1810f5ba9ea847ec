#!/usr/bin/env bash
# LoRA training throughput and memory, medtune next to the PyTorch twin in the same run:
# SmolLM2-135M shape (random weights), r=16, alpha=32, all 7 projections, batch 4 x seq 256,
# 2 threads. PyTorch runs twice: default allocator, and "tuned" (jemalloc, as in
# ../shared/bench/REFERENCE.md). Run on an otherwise idle machine: figures are wall-clock; the
# load average is printed before and after. medtune's line also gives its model GFLOP/s next to
# cblas_sgemm on the step's largest products in the same process, and which kernels ran
# (isa: avx2+fma, or portable under MEDTUNE_NO_AVX2=1).
# usage: [MEDTUNE_BUILD=DIR] bench/bench_train.sh [--batch B] [--seq T] [--steps N]
# (after tools/bootstrap.sh; DIR defaults to build; the options go to bench_train and to
# bench/bench_torch_lora.py alike)
set -euo pipefail
cd "$(dirname "$0")/.."
args=("$@")
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
export OMP_NUM_THREADS=2
py=.venv/bin/python
[ -x "$py" ] || py=python3
jemalloc=$(ls /usr/lib/*/libjemalloc.so.2 2>/dev/null | head -n 1 || true)

# medtune runs with OMP_WAIT_POLICY=PASSIVE unless told otherwise (tools/medtune.c).
medtune=$(OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE} "${MEDTUNE_BUILD:-build}/bench_train" "${args[@]}")
torch_default=$($py bench/bench_torch_lora.py --threads 2 "${args[@]}")
torch_tuned="{}"
if [ -n "$jemalloc" ]; then
  torch_tuned=$(LD_PRELOAD=$jemalloc MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1 \
    OMP_WAIT_POLICY=PASSIVE $py bench/bench_torch_lora.py --threads 2 "${args[@]}")
fi
$py - "$medtune" "$torch_default" "$torch_tuned" <<'PY'
import json, sys
rows = [("medtune", json.loads(sys.argv[1])), ("pytorch (default)", json.loads(sys.argv[2])),
        ("pytorch (tuned)", json.loads(sys.argv[3]))]
print(f"{'implementation':<20} {'tok/s':>8} {'peak RSS GB':>12}")
for name, r in rows:
    if r:
        print(f"{name:<20} {r['tok_per_s']:>8.1f} {r.get('peak_rss_gb', float('nan')):>12.2f}")
m, tuned = rows[0][1], rows[2][1]
print(f"medtune ({m['isa']}): {m['gflop_s']:.1f} model GFLOP/s, sgemm {m['sgemm_gflop_s']:.1f} "
      f"in the same process ({100 * m['gflop_s'] / m['sgemm_gflop_s']:.0f}%)")
if tuned:
    print(f"medtune / tuned PyTorch: {m['tok_per_s'] / tuned['tok_per_s']:.2f}x")
PY
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
