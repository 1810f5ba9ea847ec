// Small helpers shared by the C tests: skipping, environment paths, comparisons.
#ifndef MEDTUNE_TESTS_TESTLIB_H
#define MEDTUNE_TESTS_TESTLIB_H

#include <stddef.h>

#define TEST_SKIP 77

// Prints "SKIP: <why>" and exits 77 (ctest reports the test as skipped).
void test_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
// Prints "FAIL: <why>" and exits 1.
void test_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
// $MEDTUNE_SHARED (or ../shared); skips the test when it is absent.
const char *test_shared_dir(void);
// Environment variable or a default.
const char *test_env(const char *name, const char *fallback);

// max |a-b| over n elements.
double max_abs_diff(const float *a, const float *b, size_t n);
// ||a-b|| / max(||b||, tiny).
double rel_l2_diff(const float *a, const float *b, size_t n);

#endif
