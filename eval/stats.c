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
