#!/usr/bin/env bash
# Long windows and the memory plan, side by side in one run (docs/training.md#long-windows):
# SmolLM2-135M shape (random weights), LoRA r=16 on all 7 projections, 2 threads:
#   medtune 4 x 256 default, PyTorch tuned (jemalloc) 4 x 256, medtune 1 x 2048, medtune
#   1 x 8192 with recompute, and optionally 4 x 256 with recompute.
# Each medtune line gives tok/s, peak RSS, model GFLOP/s next to sgemm's on the step's shapes,
# attention's share of the step and the per-op-class profile (bench/bench_train.c). The load
# average is printed before and after: on a shared machine read the ratios, not the figures.
# usage: bench/bench_long.sh [BUILD_DIR] [STEPS]   (default build, 3 timed steps after a
# warm-up; STEPS 0 times the first step alone; 8192 always runs that single step)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
steps=${2:-3}
export OMP_NUM_THREADS=2 OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
py=.venv/bin/python
[ -x "$py" ] || py=python3
jemalloc=$(ls /usr/lib/*/libjemalloc.so.2 2>/dev/null | head -n 1 || true)
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$build/bench_train" --batch 4 --seq 256 --steps "$steps"
if [ -n "$jemalloc" ]; then
  LD_PRELOAD=$jemalloc MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1 \
    $py bench/bench_torch_lora.py --threads 2 --batch 4 --seq 256 --steps "$steps"
fi
"$build/bench_train" --batch 1 --seq 2048 --steps "$steps"
"$build/bench_train" --batch 1 --seq 8192 --steps 0 --recompute 1
"$build/bench_train" --batch 4 --seq 256 --steps "$steps" --recompute 1
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
