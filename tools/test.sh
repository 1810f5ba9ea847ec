#!/usr/bin/env bash
# The full test suite (what .ci/run calls): the Release build's tests, then the same suite
# built with AddressSanitizer + UndefinedBehaviorSanitizer (tests labelled `slow` run in the
# Release build only). Run tools/bootstrap.sh once first.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure -j"$jobs")

cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Release -DMEDTUNE_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --output-on-failure -j"$jobs" -LE slow)
echo "test.sh: all tests passed (Release and ASan+UBSan builds)"
