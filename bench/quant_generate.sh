#!/usr/bin/env bash
# Generation (decode) speed on quantized files, medtune next to llama.cpp on the same file and
# the same threads: SmolLM2-135M-Instruct Q4_1 (.cache, fetched by tools/bootstrap.sh) and the
# TinyLlama-1.1B shape in Q4_K and Q8_0 (random weights, bench/quant_models.py). medtune's
# figure is `medtune generate --json`'s tokens_per_s (decode steps after the prompt, greedy);
# llama.cpp's is llama-bench's tg (token generation) rate, -p 0 -n N -r 1. llama.cpp comes
# from tools/llama_cpp.sh's cache (.cache/llama.cpp/build/bin); without it medtune runs alone.
# Each file is measured --reps times, medtune and llama.cpp alternating, so that both see the
# same load; the table gives the medians and the load average of each file's runs. --busy
# runs an un-niced busy loop (one core) for the whole measurement: the case of a machine
# shared with another job, where threads that wait by spinning lose (bench/README.md).
# usage: bench/quant_generate.sh [--tokens N] [--threads N] [--reps N] [--busy]
#   MEDTUNE_BUILD (default build), QUANT_BENCH_DIR (default .cache/bench-quant)
set -euo pipefail
cd "$(dirname "$0")/.."
tokens=64
threads=2
reps=3
busy=0
while [ $# -gt 0 ]; do
  case "$1" in
    --tokens) tokens=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --busy) busy=1; shift ;;
    *) echo "usage: bench/quant_generate.sh [--tokens N] [--threads N] [--reps N] [--busy]" >&2; exit 2 ;;
  esac
done
. bench/quant_env.sh
bin=.cache/llama.cpp/build/bin
bench=$bin/llama-bench
# The cached build's RUNPATH names the checkout that built it: find its libraries here.
export LD_LIBRARY_PATH=$PWD/$bin${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
$py bench/quant_models.py tinyllama q4_k "$dir/tinyllama-q4_k.gguf"
$py bench/quant_models.py tinyllama q8_0 "$dir/tinyllama-q8_0.gguf"
files=(".cache/SmolLM2-135M-Instruct.Q4_1.gguf" "$dir/tinyllama-q4_k.gguf" "$dir/tinyllama-q8_0.gguf")
prompt="Describe the first-line treatment of community-acquired pneumonia in adults, with doses."

if [ "$busy" = 1 ]; then
  nice -n 0 sh -c 'while :; do :; done' &
  busy_pid=$!
  trap 'kill "$busy_pid"' EXIT
fi

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print (NR ? a[int((NR + 1) / 2)] : "-")}'; }

echo "medtune at $(git rev-parse --short HEAD 2>/dev/null || echo "?") ($build); $threads threads, $tokens new tokens, $reps runs each$([ "$busy" = 1 ] && echo ", a busy loop running")"
printf '%-34s %12s %12s %7s   %s\n' file "medtune t/s" "llama.cpp" ratio "load average (start, end)"
for f in "${files[@]}"; do
  [ -f "$f" ] || { echo "$f: absent (tools/bootstrap.sh fetches SmolLM2)" >&2; continue; }
  load0=$(uptime | sed 's/.*load average: //')
  # An instruct model answers a chat turn; a random base continues the plain prompt.
  how=--prompt
  case "$f" in *Instruct*) how=--chat ;; esac
  ms=() ls=()
  for _ in $(seq "$reps"); do
    ms+=("$("$build/medtune" generate "$f" "$how" "$prompt" --max-new "$tokens" --threads "$threads" \
        --json | $py -c 'import json, sys; print("{:.2f}".format(json.load(sys.stdin)["tokens_per_s"]))')")
    if [ -x "$bench" ]; then
      ls+=("$("$bench" -m "$f" -p 0 -n "$tokens" -t "$threads" -r 1 -o json 2>/dev/null |
          $py -c 'import json, sys; print("{:.2f}".format(json.load(sys.stdin)[0]["avg_ts"]))')")
    fi
  done
  m=$(median "${ms[@]}")
  l=$(median "${ls[@]}")
  ratio=$($py -c "import sys; print('-' if sys.argv[2] == '-' else '{:.2f}'.format(float(sys.argv[1]) / float(sys.argv[2])))" "$m" "$l")
  printf '%-34s %12s %12s %7s   %s; %s\n' "$(basename "$f")" "$m" "$l" "$ratio" "$load0" \
    "$(uptime | sed 's/.*load average: //')"
  echo "  runs: medtune ${ms[*]}; llama.cpp ${ls[*]:-}" >&2
done
