#!/usr/bin/env bash
# Fuzzing medtune's parsers with libFuzzer under ASan+UBSan (docs/fuzzing.md). Needs clang,
# libclang-rt-14-dev and libomp-14-dev (tools/bootstrap.sh installs them).
#
#   tools/fuzz.sh ci [SECONDS]              build build-fuzz/ (clang, -DMEDTUNE_FUZZ=ON), replay the
#                                           regression inputs and seeds, then fuzz every harness for
#                                           SECONDS (default 20) from its committed seeds: ctest -L fuzz
#   tools/fuzz.sh campaign [LIMIT] [PARSER...]
#                                           the long run, one harness after the other (nice -n 10):
#                                           LIMIT is seconds per harness (default 600) or runs=N;
#                                           seeds: the committed corpus plus excerpts of ../shared
#                                           (make_seeds.py --shared); crashes do not stop it
#                                           (-fork=1 -ignore_crashes=1), they are kept as
#                                           build-fuzz/campaign/artifacts/<parser>-crash-*
#   tools/fuzz.sh summary                   the table of the last campaign (from its logs)
#
# The build directory is build-fuzz/ unless MEDTUNE_FUZZ_BUILD names another one.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD=${MEDTUNE_FUZZ_BUILD:-$ROOT/build-fuzz}
PARSERS="safetensors gguf tokenizer config prep_records xml shards state metrics"
PYTHON=${MEDTUNE_PYTHON:-$ROOT/.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python3
CAMPAIGN=$BUILD/campaign

usage() {
  sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
}

build() {
  local seconds=$1
  if ! command -v clang >/dev/null; then
    echo "fuzz.sh: clang not found: install the Debian packages clang libclang-rt-14-dev libomp-14-dev" >&2
    exit 1
  fi
  CC=clang cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DMEDTUNE_FUZZ=ON \
    -DMEDTUNE_FUZZ_SECONDS="$seconds" -DMEDTUNE_PYTHON="$PYTHON" >/dev/null
  cmake --build "$BUILD" -j"$(nproc)"
}

# One line per parser from its campaign log: the last status line libFuzzer printed.
summary() {
  printf "%-13s %12s %8s %7s %7s %8s %s\n" parser executions exec/s cov ft seconds "oom/timeout/crash"
  for p in $PARSERS; do
    local log=$CAMPAIGN/$p.log
    [ -f "$log" ] || continue
    # Fork mode: "#N: cov: C ft: F corp: K exec/s E oom/timeout/crash: a/b/c time: Ts job: J .."
    local line
    line=$(grep -E '^#[0-9]+: cov:' "$log" | tail -1 || true)
    if [ -z "$line" ]; then
      printf "%-13s (no status line yet)\n" "$p"
      continue
    fi
    echo "$line" | awk -v p="$p" '{
      for (i = 1; i <= NF; i++) {
        if ($i == "cov:") cov = $(i+1); if ($i == "ft:") ft = $(i+1)
        if ($i == "exec/s" || $i == "exec/s:") eps = $(i+1); if ($i == "oom/timeout/crash:") bad = $(i+1)
        if ($i == "time:") t = $(i+1)
      }
      # exec/s over the whole run (the status line shows the rate of the last job).
      n = substr($1, 2); sub(":", "", n); sub("s", "", t)
      printf "%-13s %12s %8d %7s %7s %8s %s\n", p, n, (t > 0 ? n / t : 0), cov, ft, t, bad
    }'
  done
  local found
  found=$(ls "$CAMPAIGN"/artifacts 2>/dev/null | grep -c -E '^[a-z_]+-(crash|leak|timeout|oom)-' || true)
  echo "artifacts (crash/leak/timeout/oom inputs) in $CAMPAIGN/artifacts: $found"
}

# A harness process that crashed leaves its scratch directory (fuzz_common.c names it after
# the pid): remove those whose process is gone.
remove_stale_scratch() {
  local d pid
  for d in /dev/shm/medtune-fuzz-* "${TMPDIR:-/tmp}"/medtune-fuzz-*; do
    [ -d "$d" ] || continue
    pid=${d##*/medtune-fuzz-}
    pid=${pid%%-*}
    case $pid in *[!0-9]*|"") continue ;; esac
    kill -0 "$pid" 2>/dev/null || rm -rf "$d"
  done
}

campaign() {
  local limit=${1:-600}
  shift || true
  local parsers=${*:-$PARSERS}
  local stop
  case $limit in
    runs=*) stop="-runs=${limit#runs=}" ;;
    *[!0-9]*|"") usage ;;
    *) stop="-max_total_time=$limit" ;;
  esac
  build 20
  mkdir -p "$CAMPAIGN/artifacts"
  local shared=()
  [ -d "$ROOT/../shared" ] && shared=(--shared "$ROOT/../shared")
  rm -rf "$CAMPAIGN/seeds"
  "$PYTHON" tests/fuzz/make_seeds.py --medtune "$BUILD/medtune" --out "$CAMPAIGN/seeds" "${shared[@]}"
  for p in $parsers; do
    mkdir -p "$CAMPAIGN/corpus/$p"
    cp -n tests/fuzz/corpus/"$p"/* "$CAMPAIGN/seeds/$p"/* "$CAMPAIGN/corpus/$p/" 2>/dev/null || true
    local dict=()
    [ -f tests/fuzz/"$p".dict ] && dict=(-dict="$ROOT/tests/fuzz/$p.dict")
    # libhdf5's lazily zero-filled allocations of corrupt sizes (tests/cmake/fuzz.cmake).
    [ "$p" = state ] && dict+=(-malloc_limit_mb=1048576)
    echo "fuzz.sh: campaign: $p ($stop), log $CAMPAIGN/$p.log"
    (cd "$CAMPAIGN" && nice -n 10 "$BUILD/tests/fuzz_$p" "$stop" -fork=1 -ignore_crashes=1 \
      -ignore_timeouts=1 -ignore_ooms=1 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$CAMPAIGN/artifacts/$p-" "${dict[@]}" "$CAMPAIGN/corpus/$p" \
      >"$CAMPAIGN/$p.log" 2>&1) || echo "fuzz.sh: $p exited with $? (see $CAMPAIGN/$p.log)"
    remove_stale_scratch
  done
  summary
}

case ${1:-} in
  ci)
    build "${2:-20}"
    (cd "$BUILD" && ctest --output-on-failure -L fuzz_replay)
    (cd "$BUILD" && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -L '^fuzz$')
    ;;
  campaign) shift; campaign "$@" ;;
  summary) summary ;;
  *) usage ;;
esac
