#include "eval/stats.h"

#include <math.h>

void stats_wilson(size_t k, size_t n, double z, double *lo, double *hi) {
    if (n == 0) {
        *lo = 0.0;
        *hi = 1.0;
        return;
    }
    const double nn = (double)n, p = (double)k / nn, z2 = z * z;
    const double denom = 1.0 + z2 / nn;
    const double center = (p + z2 / (2.0 * nn)) / denom;
    const double half = z / denom * sqrt(p * (1.0 - p) / nn + z2 / (4.0 * nn * nn));
    *lo = center - half < 0.0 ? 0.0 : center - half;
    *hi = center + half > 1.0 ? 1.0 : center + half;
}

double stats_binary_stderr(size_t k, size_t n) {
    if (n < 2) return 0.0;
    const double nn = (double)n, p = (double)k / nn;
    // sum of squared deviations of k ones and n-k zeros from p, over n - 1
    const double var = ((double)k * (1.0 - p) * (1.0 - p) + (nn - (double)k) * p * p) / (nn - 1.0);
    return sqrt(var / nn);
}

double stats_mcnemar_exact(size_t b, size_t c) {
    const size_t n = b + c, k = b < c ? b : c;
    if (n == 0) return 1.0;
    // P(X <= k) for X ~ Binomial(n, 1/2), each term C(n, i) / 2^n from log-gamma: n reaches
    // the thousands on a full benchmark, where 2^n overflows a double.
    const double ln2n = (double)n * log(2.0), lg_n1 = lgamma((double)n + 1.0);
    double tail = 0.0;
    for (size_t i = 0; i <= k; i++)
        tail += exp(lg_n1 - lgamma((double)i + 1.0) - lgamma((double)(n - i) + 1.0) - ln2n);
    const double p = 2.0 * tail;
    return p < 1.0 ? p : 1.0;
}
