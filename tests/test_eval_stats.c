// Prints the exact McNemar p-value (eval/stats.c) of each "b c" pair given on the command line,
// one "b c p" line each, for tests/eval/check_suite.py to compare with exact fractions.
// usage: test_eval_stats B C [B C ...]
#include <stdio.h>
#include <stdlib.h>

#include "eval/stats.h"
#include "testlib.h"

int main(int argc, char **argv) {
    if (argc < 3 || argc % 2 == 0) test_fail("usage: test_eval_stats B C [B C ...]");
    for (int i = 1; i + 1 < argc; i += 2) {
        size_t b = strtoull(argv[i], NULL, 10), c = strtoull(argv[i + 1], NULL, 10);
        printf("%zu %zu %.17g\n", b, c, stats_mcnemar_exact(b, c));
    }
    return 0;
}
