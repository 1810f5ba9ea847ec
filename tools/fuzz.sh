#!/usr/bin/env bash
# Fuzzing medtune's parsers with libFuzzer under ASan+UBSan (docs/fuzzing.md). Needs clang,
# libclang-rt-14-dev and libomp-14-dev (tools/bootstrap.sh installs them).
#
#   tools/fuzz.sh ci [SECONDS]              build build-fuzz/ (clang, -DMEDTUNE_FUZZ=ON), replay the
#                                           regression inputs and seeds, then fuzz every harness for
#                                           SECONDS (default 20) from its committed seeds: ctest -L fuzz
#   tools/fuzz.sh campaign [LIMIT...] [jobs=J] [PARSER...]
#                                           the long run, one harness after the other (nice -n 19,
#                                           J parallel libFuzzer jobs of the harness, default 1),
#                                           ACCUMULATED across runs: the corpus and a ledger of the
#                                           executions of every run stay in .cache/fuzz/. LIMIT:
#                                           SECONDS (per harness and run; 600 when no runs=) and/or
#                                           runs=N (until the parser's ledger total reaches N;
#                                           parsers already there are skipped). Seeds: the
#                                           committed corpus plus excerpts of ../shared
#                                           (make_seeds.py --shared), each parser's inputs capped
#                                           at its max_len (below); crashes do not stop it
#                                           (-fork=J -ignore_crashes=1), they are kept as
#                                           .cache/fuzz/artifacts/<parser>-crash-*
#   tools/fuzz.sh summary                   per parser: total executions and findings of all runs,
#                                           then one line per run, then the kept artifacts
#
# The build directory is build-fuzz/ unless MEDTUNE_FUZZ_BUILD names another one; the campaign
# state is in $MEDTUNE_CACHE/fuzz (default .cache/fuzz): corpus/<parser>/, artifacts/, logs/,
# ledger.tsv.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD=${MEDTUNE_FUZZ_BUILD:-$ROOT/build-fuzz}
PARSERS="safetensors gguf tokenizer config prep_records xml shards state metrics"
PYTHON=${MEDTUNE_PYTHON:-$ROOT/.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python3
CAMPAIGN=${MEDTUNE_CACHE:-$ROOT/.cache}/fuzz
LEDGER=$CAMPAIGN/ledger.tsv

usage() {
  sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
}

# The longest input libFuzzer makes for each parser: about twice its largest real seed, so
# mutations have room to grow the file while the fuzzer spends no time on megabyte inputs
# (unset, libFuzzer takes the largest corpus file: 2 MB for the tokenizers of ../shared,
# which made every tokenizer execution cost a whole Llama vocabulary). docs/fuzzing.md.
max_len() {
  case $1 in
    safetensors|config|metrics) echo 4096 ;;
    prep_records|shards) echo 8192 ;;
    gguf) echo 16384 ;;
    tokenizer|xml|state) echo 65536 ;;
  esac
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

# Executions, seconds, cov, ft and oom/timeout/crash of one campaign log: its last fork-mode
# status line "#N: cov: C ft: F corp: K exec/s E oom/timeout/crash: a/b/c time: Ts job: J ..."
# (the parent prints no stat:: lines in fork mode; N counts every job's executions).
log_stats() {
  grep -E '^#[0-9]+: cov:' "$1" | tail -1 | awk '{
    for (i = 1; i <= NF; i++) {
      if ($i == "cov:") cov = $(i+1); if ($i == "ft:") ft = $(i+1)
      if ($i == "oom/timeout/crash:") bad = $(i+1); if ($i == "time:") t = $(i+1)
    }
    n = substr($1, 2); sub(":", "", n); sub("s", "", t)
    printf "%s\t%s\t%s\t%s\t%s\n", n, t, cov, ft, bad
  }'
}

# The ledger total of executions of one parser.
ledger_total() {
  [ -f "$LEDGER" ] || { echo 0; return; }
  awk -F'\t' -v p="$1" '$2 == p { n += $3 } END { printf "%d\n", n }' "$LEDGER"
}

# Ledger columns: end time (UTC), parser, executions, seconds, cov, ft, oom/timeout/crash,
# commit of the build, load average at the end, CPU seconds (user + system of the harness and
# its fork-mode jobs; empty in runs recorded before the column existed). On the shared machine
# the wall-clock exec/s says how much CPU the other users left; exec per CPU-second is the
# harness's own speed.
summary() {
  if [ ! -s "$LEDGER" ]; then
    echo "fuzz.sh: no campaign run recorded in $LEDGER"
    return
  fi
  echo "Totals over all runs ($LEDGER); cpu-s and exec/cpu-s over the runs that recorded CPU time"
  echo "(cpu runs), corpus = inputs in $CAMPAIGN/corpus/<parser> now:"
  printf "%-13s %5s %14s %9s %8s %9s %8s %11s %7s %s\n" parser runs executions seconds exec/s cpu-s "cpu runs" exec/cpu-s corpus \
    "oom/timeout/crash"
  local corpus="" p
  for p in $PARSERS; do
    corpus="$corpus $p=$({ find "$CAMPAIGN/corpus/$p" -maxdepth 1 -type f 2>/dev/null || true; } | wc -l)"
  done
  awk -F'\t' -v order="$PARSERS" -v corpus="$corpus" '
    { runs[$2]++; n[$2] += $3; t[$2] += $4; split($7, b, "/"); oom[$2] += b[1]; to[$2] += b[2]; cr[$2] += b[3]
      if ($10 != "") { cruns[$2]++; cn[$2] += $3; cpu[$2] += $10 } }
    END {
      m = split(corpus, cs, " "); for (i = 1; i <= m; i++) { split(cs[i], kv, "="); size[kv[1]] = kv[2] }
      k = split(order, ps, " ")
      for (i = 1; i <= k; i++) { p = ps[i]; if (!(p in runs)) continue
        printf "%-13s %5d %14d %9d %8d %9d %8d %11d %7d %d/%d/%d\n", p, runs[p], n[p], t[p], t[p] ? n[p] / t[p] : 0,
          cpu[p], cruns[p], cpu[p] ? cn[p] / cpu[p] : 0, size[p], oom[p], to[p], cr[p] }
    }' "$LEDGER"
  echo
  echo "Runs:"
  printf "%-20s %-13s %12s %7s %7s %6s %-9s %-12s %6s %s\n" end parser executions seconds cov ft o/t/c commit load cpu-s
  awk -F'\t' '{ printf "%-20s %-13s %12s %7s %7s %6s %-9s %-12s %6s %s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 }' "$LEDGER"
  echo
  local found
  found=$(ls "$CAMPAIGN"/artifacts 2>/dev/null | grep -E '^[a-z_]+-(crash|leak|timeout|oom)-' || true)
  echo "Artifacts (crash/leak/timeout/oom inputs) in $CAMPAIGN/artifacts: $(printf '%s' "$found" | grep -c . || true)"
  [ -z "$found" ] || printf '  %s\n' $found
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
  local seconds="" target="" parsers="" jobs=1
  for a in "$@"; do
    case $a in
      runs=*[!0-9]*|runs=|jobs=*[!0-9]*|jobs=|jobs=0) usage ;;
      runs=*) target=${a#runs=} ;;
      jobs=*) jobs=${a#jobs=} ;;
      *[!0-9]*|"") parsers="$parsers $a" ;;
      *) seconds=$a ;;
    esac
  done
  parsers=${parsers:-$PARSERS}
  # runs=N alone runs until N; neither limit given: 600 s.
  [ -n "$seconds$target" ] || seconds=600
  build 20
  mkdir -p "$CAMPAIGN/artifacts" "$CAMPAIGN/logs"
  local shared=()
  [ -d "$ROOT/../shared" ] && shared=(--shared "$ROOT/../shared")
  local seeds=$BUILD/campaign-seeds
  rm -rf "$seeds"
  "$PYTHON" tests/fuzz/make_seeds.py --medtune "$BUILD/medtune" --out "$seeds" "${shared[@]}"
  local commit
  commit=$(git rev-parse --short=10 HEAD 2>/dev/null || echo unknown)
  for p in $parsers; do
    local len limit=() done_runs
    [ -z "$seconds" ] || limit+=(-max_total_time="$seconds")
    len=$(max_len "$p")
    [ -n "$len" ] || { echo "fuzz.sh: unknown parser $p (one of: $PARSERS)" >&2; exit 2; }
    if [ -n "$target" ]; then
      done_runs=$(ledger_total "$p")
      if [ "$done_runs" -ge "$target" ]; then
        echo "fuzz.sh: campaign: $p: $done_runs executions in the ledger, target $target reached"
        continue
      fi
      limit+=(-runs=$((target - done_runs)))
    fi
    mkdir -p "$CAMPAIGN/corpus/$p"
    # Seeds longer than max_len stay out: libFuzzer would cut them into invalid files.
    find tests/fuzz/corpus/"$p" "$seeds/$p" -maxdepth 1 -type f -size -"$((len + 1))"c \
      -exec cp -n -t "$CAMPAIGN/corpus/$p" {} + 2>/dev/null || true
    local extra=(-max_len="$len")
    [ -f tests/fuzz/"$p".dict ] && extra+=(-dict="$ROOT/tests/fuzz/$p.dict")
    # libhdf5's lazily zero-filled allocations of corrupt sizes (tests/cmake/fuzz.cmake).
    [ "$p" = state ] && extra+=(-malloc_limit_mb=1048576)
    local log
    log=$CAMPAIGN/logs/$p-$(date -u +%Y%m%dT%H%M%S).log
    echo "fuzz.sh: campaign: $p (${limit[*]}), log $log"
    # `times` in the subshell: the CPU time of its children, i.e. the harness and the jobs it
    # waited for (a job still running when the harness is interrupted is not counted).
    (cd "$CAMPAIGN" && rc=0 && nice -n 19 "$BUILD/tests/fuzz_$p" "${limit[@]}" -fork="$jobs" -ignore_crashes=1 \
      -ignore_timeouts=1 -ignore_ooms=1 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$CAMPAIGN/artifacts/$p-" "${extra[@]}" "$CAMPAIGN/corpus/$p" \
      >"$log" 2>&1 || rc=$?; times >"$log.cpu"; exit $rc) || echo "fuzz.sh: $p exited with $? (see $log)"
    local cpu
    cpu=$(sed -n 2p "$log.cpu" 2>/dev/null | awk '{ n = 0; for (i = 1; i <= 2; i++) {
      split($i, ms, "m"); sub("s", "", ms[2]); n += ms[1] * 60 + ms[2] }; printf "%.1f\n", n }')
    rm -f "$log.cpu"
    remove_stale_scratch
    local stats
    stats=$(log_stats "$log")
    if [ -n "$stats" ]; then
      printf "%s\t%s\t%s\t%s\t%s\t%s\n" "$(date -u +%Y-%m-%dT%H:%M:%S)" "$p" "$stats" "$commit" \
        "$(cut -d' ' -f1 /proc/loadavg)" "$cpu" >>"$LEDGER"
    else
      echo "fuzz.sh: $p: no status line in $log, nothing added to the ledger"
    fi
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
