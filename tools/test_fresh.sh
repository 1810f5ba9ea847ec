#!/usr/bin/env bash
# The fresh-clone gate: the whole test suite as a new user's checkout runs it, without
# ../shared (MEDTUNE_SHARED points at an absent folder; .cache/ and .venv are used as
# tools/bootstrap.sh leaves them). Prints skipped/total and each skip's reason, and fails when
# any test fails or more than 10% of the tests skip: the proofs that matter must run on what a
# clone has. Usage: tools/test_fresh.sh [BUILD_DIR] [extra cmake arguments...]; extra ctest
# arguments (e.g. -LE slow) in MEDTUNE_FRESH_CTEST_ARGS. tools/test.sh runs it on the
# ASan+UBSan build.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-fresh}
shift || true
case "$build" in /*) ;; *) build="$PWD/$build" ;; esac
jobs=$(nproc)

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DMEDTUNE_SHARED="$build/no-such-shared" \
  "$@" >/dev/null
cmake --build "$build" -j"$jobs" >/dev/null
rc=0
# shellcheck disable=SC2086  # the extra arguments are words
(cd "$build" && ctest --output-on-failure -j"$jobs" ${MEDTUNE_FRESH_CTEST_ARGS:-}) >"$build/fresh-ctest.txt" 2>&1 || rc=$?

total=$(sed -n 's/.* tests failed out of \([0-9]*\)$/\1/p' "$build/fresh-ctest.txt")
skipped=$(grep -c '(Skipped)$' "$build/fresh-ctest.txt" || true)
failed=$(grep -c '(Failed)$\|(Timeout)$\|(SEGFAULT)$\|(Not Run)$\|(Subprocess aborted)$' \
  "$build/fresh-ctest.txt" || true)
if [ -z "$total" ]; then
  cat "$build/fresh-ctest.txt"
  echo "test_fresh.sh: ctest printed no summary" >&2
  exit 1
fi
# ctest counts skipped tests as passed in "out of N"; every registered test is in N.
echo "test_fresh.sh: $skipped of $total tests skipped, $failed failed (without ../shared)"
# Testing/Temporary/LastTest.log holds every test's output; a skip's reason is its SKIP line.
silent=0
if [ "$skipped" -gt 0 ]; then
  echo "skipped, with the reason each printed:"
  for name in $(sed -n 's/^[[:space:]]*[0-9]* - \(.*\) (Skipped)$/\1/p' "$build/fresh-ctest.txt"); do
    reason=$(awk -v t="$name" '/^[0-9]+\/[0-9]+ Test: / { cur = $3 }
      cur == t && /^SKIP: / { print substr($0, 7); exit }' "$build/Testing/Temporary/LastTest.log")
    if [ -z "$reason" ]; then
      reason="(no SKIP: line printed)"
      silent=$((silent + 1))
    fi
    echo "  $name: $reason"
  done
fi
if [ "$silent" -gt 0 ]; then
  echo "test_fresh.sh: $silent skipped tests did not say why" >&2
  exit 1
fi
if [ "$failed" -gt 0 ] || [ "$rc" -ne 0 ]; then
  cat "$build/fresh-ctest.txt"
  echo "test_fresh.sh: tests failed (output in $build/fresh-ctest.txt)" >&2
  exit 1
fi
if [ $((skipped * 10)) -gt "$total" ]; then
  echo "test_fresh.sh: more than 10% of the tests skip on a fresh clone" >&2
  exit 1
fi
echo "test_fresh.sh: passed"
