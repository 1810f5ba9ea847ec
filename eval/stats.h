// Confidence intervals for accuracies (a proportion of k successes out of n trials), and the
// paired test of two models' accuracies on the same items.
#ifndef MEDTUNE_EVAL_STATS_H
#define MEDTUNE_EVAL_STATS_H

#include <stddef.h>

// z of a two-sided 95% normal interval.
#define STATS_Z95 1.959963984540054

// Wilson score interval of k / n at normal quantile z. Unlike the normal approximation it stays
// inside [0, 1] and is not empty at k = 0 or k = n, which matters for small --limit runs.
// n = 0 gives [0, 1].
void stats_wilson(size_t k, size_t n, double z, double *lo, double *hi);

// Standard error of the mean of n 0/1 outcomes with k ones, using the sample standard
// deviation (n - 1 denominator) as lm-evaluation-harness's mean_stderr does. 0 when n < 2.
double stats_binary_stderr(size_t k, size_t n);

// Two-sided p-value of the exact McNemar test of paired 0/1 outcomes: b pairs where only the
// first is right, c where only the second is. Under no change each discordant pair goes either
// way with probability 1/2, so p = min(1, 2 P(X <= min(b, c))), X ~ Binomial(b + c, 1/2)
// (statsmodels' mcnemar(exact=True), scipy's binomtest(min(b, c), b + c)). 1 when b + c = 0.
double stats_mcnemar_exact(size_t b, size_t c);

#endif
