#!/usr/bin/env bash
# The full test suite (what .ci/run calls), in three passes:
#   1. the Release build's tests, with ../shared beside the checkout when it is there (its real
#      models and data add cases to the drivers);
#   2. the same suite built with AddressSanitizer + UndefinedBehaviorSanitizer, run as a fresh
#      clone would run it: without ../shared (tools/test_fresh.sh), failing when more than 10%
#      of the tests skip (tests labelled `slow` run in the Release build only);
#   3. every libFuzzer harness for 20 s under ASan+UBSan in a clang build (tools/fuzz.sh ci).
# Run tools/bootstrap.sh once first.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure -j"$jobs")

ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 MEDTUNE_FRESH_CTEST_ARGS="-LE slow" \
  tools/test_fresh.sh build-asan -DMEDTUNE_SANITIZE=ON

tools/fuzz.sh ci 20
echo "test.sh: all tests passed (Release; ASan+UBSan without ../shared; fuzzing)"
