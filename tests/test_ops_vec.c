// The kernels of model/ops_vec.h, each version (portable, and AVX2 + FMA where the CPU has it)
// against double-precision references written here from the definitions:
// - exp: relative error <= OPS_VEC_EXP_MAX_REL_ERR against libm's double exp on 4 million
//   points of [-87.33, 88], and the documented values outside (0, exp(88), NaN);
// - every other kernel on lengths 1..70 (every partial vector) and 1536: relative error
//   <= KERNEL_TOL, and the elements past the length untouched;
// - the largest difference between the two versions is printed (docs/training.md quotes it);
// - AdamW gives the bits of its scalar formula on the dispatched path (no fused multiply-add);
// - the dispatch: MEDTUNE_NO_AVX2=1 selects the portable table (ctest ops_vec_portable).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cpu.h"
#include "common/rng.h"
#include "model/ops_vec.h"
#include "optim/adamw.h"
#include "tests/testlib.h"

// Kernels built on exp carry its 3e-7 and the float roundings of a few more operations.
#define KERNEL_TOL 2e-6
#define MAXN 1536
#define GUARD 8  // elements after each output that must stay untouched

static rng_state rng;
static double worst_diff;  // largest relative difference between the two versions

static void fill(float *x, int n, float lo, float hi) {
    for (int i = 0; i < n; i++) x[i] = lo + (hi - lo) * rng_uniform(&rng);
}

// |got - want| / max(|want| over the output, floor). The gated activations use a floor of 1:
// act(g) = g (1 + tanh(..)) / 2 at g = -12 is 1 + tanh = 0 in float (as in PyTorch's formula),
// an absolute error of 1e-20 that a tiny one-element output would make relative.
static double act_floor;
static double rel_err(const float *got, const double *want, int n) {
    double scale = act_floor > 0 ? act_floor : 1e-30, err = 0.0;
    for (int i = 0; i < n; i++) scale = fmax(scale, fabs(want[i]));
    for (int i = 0; i < n; i++) err = fmax(err, fabs((double)got[i] - want[i]));
    return err / scale;
}

static void check(const char *isa, const char *what, int n, double err) {
    if (!(err <= KERNEL_TOL)) test_fail("%s %s n=%d: relative error %.3g > %g", isa, what, n, err, KERNEL_TOL);
}

static void check_guard(const char *isa, const char *what, const float *y, int n) {
    for (int i = n; i < n + GUARD; i++)
        if (y[i] != -7.0f) test_fail("%s %s n=%d: wrote element %d past the end", isa, what, n, i);
}

static double sigmoid(double g) { return 1.0 / (1.0 + exp(-g)); }

static double gelu_t(double x) { return tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)); }

// exp over [-87.33, 88]: a uniform grid plus every small integer and the ends.
static void check_exp(const ops_vec *k) {
    enum { CHUNK = 4096, POINTS = 1000 * CHUNK };
    static float x[CHUNK], y[CHUNK];
    double worst = 0.0, worst_x = 0.0;
    const double lo = OPS_VEC_EXP_LO, hi = OPS_VEC_EXP_HI;
    for (int c0 = 0; c0 < POINTS; c0 += CHUNK) {
        for (int i = 0; i < CHUNK; i++) x[i] = (float)(lo + (hi - lo) * (c0 + i) / (POINTS - 1));
        if (c0 == 0)
            for (int i = 0; i < 176; i++) x[i] = (float)(i - 87);
        x[0] = OPS_VEC_EXP_LO;
        x[1] = OPS_VEC_EXP_HI;
        k->exp_shift(y, x, CHUNK, 0.0f, 1.0f);
        for (int i = 0; i < CHUNK; i++) {
            const double want = exp((double)x[i]);
            const double e = fabs(y[i] - want) / want;
            if (e > worst) worst = e, worst_x = x[i];
            if (k == ops_vec_portable() && y[i] != ops_vec_expf(x[i]))
                test_fail("ops_vec_expf(%.9g) differs from the portable table's exp", x[i]);
        }
    }
    printf("%s exp: max relative error %.3g at x = %.7g (bound %g)\n", k->isa, worst, worst_x,
           OPS_VEC_EXP_MAX_REL_ERR);
    if (!(worst <= OPS_VEC_EXP_MAX_REL_ERR)) test_fail("%s exp: error %.3g", k->isa, worst);
    const float special[5] = {-1e30f, -INFINITY, 100.0f, INFINITY, NAN};
    float out[5];
    k->exp_shift(out, special, 5, 0.0f, 1.0f);
    const float e88 = out[2];
    if (out[0] != 0.0f || out[1] != 0.0f) test_fail("%s exp: not 0 below the range", k->isa);
    if (!(fabs(e88 - exp(88.0)) / exp(88.0) <= OPS_VEC_EXP_MAX_REL_ERR) || out[3] != e88)
        test_fail("%s exp: above the range %g %g, not exp(88)", k->isa, out[2], out[3]);
    if (!isnan(out[4])) test_fail("%s exp: NaN gave %g", k->isa, out[4]);
}

// Every kernel at length n against its double reference; outputs saved in res for comparing
// the two versions (res[0..n) the main output of each kernel in turn).
static void check_kernels(const ops_vec *k, int n, const float *in, float *res) {
    const char *isa = k->isa;
    const float *a = in, *b = in + MAXN, *c = in + 2 * MAXN, *d = in + 3 * MAXN;
    static float y[MAXN + GUARD], y2[MAXN + GUARD];
    static double want[MAXN], want2[MAXN];
    int at = 0;
#define RESET(buf)                                                                                 \
    for (int i = 0; i < MAXN + GUARD; i++) buf[i] = -7.0f
#define KEEP(buf)                                                                                  \
    memcpy(res + at, buf, (size_t)n * sizeof(float));                                              \
    at += n

    // max, dot, sum_exp: scalars
    double m = a[0], dt = 0.0, dabs = 1e-30;  // dot's error relative to sum |a_i b_i|
    for (int i = 0; i < n; i++) m = fmax(m, a[i]), dt += (double)a[i] * b[i];
    for (int i = 0; i < n; i++) dabs += fabs((double)a[i] * b[i]);
    if (k->max(a, n) != (float)m) test_fail("%s max n=%d", isa, n);
    check(isa, "dot", n, fabs(k->dot(a, b, n) - dt) / dabs);
    double se = 0.0;
    for (int i = 0; i < n; i++) se += exp((double)a[i] - 0.5);
    check(isa, "sum_exp", n, fabs(k->sum_exp(a, n, 0.5f) - se) / se);
    res[at++] = k->dot(a, b, n);
    res[at++] = (float)k->sum_exp(a, n, 0.5f);

    RESET(y);
    const float s = k->exp_shift(y, a, n, 0.5f, 0.25f);
    for (int i = 0; i < n; i++) want[i] = exp((double)a[i] - 0.5) * 0.25;
    check(isa, "exp_shift", n, rel_err(y, want, n));
    check(isa, "exp_shift sum", n, fabs(s - se * 0.25) / (se * 0.25));
    check_guard(isa, "exp_shift", y, n);
    KEEP(y);

    RESET(y);
    memcpy(y, a, (size_t)n * sizeof(float));
    k->scale(y, n, 1.5f);
    k->add(y, b, n);
    k->mul_sub(y, c, 0.25f, n);
    for (int i = 0; i < n; i++) want[i] = ((double)a[i] * 1.5 + b[i]) * ((double)c[i] - 0.25);
    check(isa, "scale/add/mul_sub", n, rel_err(y, want, n));
    check_guard(isa, "scale/add/mul_sub", y, n);
    KEEP(y);

    // RMSNorm forward and backward on one row of n
    RESET(y);
    const float r = k->rmsnorm_row(y, a, d, n, 1e-5f);
    double ss = 0.0;
    for (int i = 0; i < n; i++) ss += (double)a[i] * a[i];
    const double rr = 1.0 / sqrt(ss / n + 1e-5);
    for (int i = 0; i < n; i++) want[i] = d[i] * a[i] * rr;
    check(isa, "rmsnorm_row", n, rel_err(y, want, n) + fabs(r - rr) / rr);
    check_guard(isa, "rmsnorm_row", y, n);
    KEEP(y);
    RESET(y);
    memcpy(y, c, (size_t)n * sizeof(float));
    k->rmsnorm_row_backward(y, b, a, d, (float)rr, n);
    double dot = 0.0;
    for (int i = 0; i < n; i++) dot += (double)d[i] * b[i] * a[i];
    for (int i = 0; i < n; i++) want[i] = c[i] + rr * d[i] * b[i] - rr * rr * rr / n * dot * a[i];
    check(isa, "rmsnorm_row_backward", n, rel_err(y, want, n));
    check_guard(isa, "rmsnorm_row_backward", y, n);
    KEEP(y);

    // RoPE: 2 heads of D = 2 * (n / 2 rounded up to >= 1), forward then backward
    const int half = (n + 1) / 2, D = 2 * half;
    if (2 * D <= MAXN) {
        RESET(y);
        memcpy(y, b, (size_t)2 * D * sizeof(float));
        k->rope_row(y, c, d, 2, D, 1.0f);
        for (int h = 0; h < 2; h++)
            for (int j = 0; j < half; j++) {
                const double x0 = b[h * D + j], x1 = b[h * D + j + half];
                want[h * D + j] = x0 * c[j] - x1 * d[j];
                want[h * D + j + half] = x1 * c[j] + x0 * d[j];
            }
        check(isa, "rope_row", n, rel_err(y, want, 2 * D));
        check_guard(isa, "rope_row", y, 2 * D);
        k->rope_row(y, c, d, 2, D, -1.0f);  // c, d are not a rotation: only a transpose check
        for (int h = 0; h < 2; h++)
            for (int j = 0; j < half; j++) {
                const double x0 = want[h * D + j], x1 = want[h * D + j + half];
                want2[h * D + j] = x0 * c[j] + x1 * d[j];
                want2[h * D + j + half] = x1 * c[j] - x0 * d[j];
            }
        check(isa, "rope_row backward", n, rel_err(y, want2, 2 * D));
        KEEP(y);
    }

    // SwiGLU and GeGLU, gates over [-12, 12] (a), up / dh in b, c; gradients accumulate onto d
    act_floor = 1.0;
    for (int geglu = 0; geglu < 2; geglu++) {
        const char *what = geglu ? "geglu" : "swiglu";
        RESET(y);
        (geglu ? k->geglu_forward : k->swiglu_forward)(y, a, b, n);
        for (int i = 0; i < n; i++) {
            const double g = a[i];
            want[i] = (geglu ? 0.5 * g * (1.0 + gelu_t(g)) : g * sigmoid(g)) * b[i];
        }
        check(isa, what, n, rel_err(y, want, n));
        check_guard(isa, what, y, n);
        KEEP(y);
        RESET(y);
        RESET(y2);
        memcpy(y, d, (size_t)n * sizeof(float));
        memcpy(y2, d, (size_t)n * sizeof(float));
        (geglu ? k->geglu_backward : k->swiglu_backward)(y, y2, c, a, b, n);
        for (int i = 0; i < n; i++) {
            const double g = a[i];
            double act, dact;
            if (geglu) {
                const double t = gelu_t(g);
                act = 0.5 * g * (1.0 + t);
                dact = 0.5 * (1.0 + t) + 0.5 * g * (1.0 - t * t) * 0.7978845608028654 *
                                             (1.0 + 3.0 * 0.044715 * g * g);
            } else {
                const double sg = sigmoid(g);
                act = g * sg;
                dact = sg * (1.0 + g * (1.0 - sg));
            }
            want[i] = d[i] + (double)c[i] * b[i] * dact;
            want2[i] = d[i] + (double)c[i] * act;
        }
        check(isa, geglu ? "geglu_backward dg" : "swiglu_backward dg", n, rel_err(y, want, n));
        check(isa, geglu ? "geglu_backward du" : "swiglu_backward du", n, rel_err(y2, want2, n));
        check_guard(isa, what, y, n);
        check_guard(isa, what, y2, n);
        KEEP(y);
        KEEP(y2);
    }
    act_floor = 0.0;
#undef RESET
#undef KEEP
}

enum { RES_FLOATS = 16 * MAXN + 16 };

static void check_versions(const ops_vec *portable, const ops_vec *avx2) {
    static float in[4 * MAXN];
    float *rp = calloc(RES_FLOATS, sizeof(float)), *ra = calloc(RES_FLOATS, sizeof(float));
    if (!rp || !ra) test_fail("out of memory");
    for (int n = 1; n <= MAXN; n = n < 70 ? n + 1 : MAXN + (n == MAXN)) {
        fill(in, MAXN, -12.0f, 12.0f);
        fill(in + MAXN, 3 * MAXN, -2.0f, 2.0f);
        check_kernels(portable, n, in, rp);
        if (avx2) {
            check_kernels(avx2, n, in, ra);
            double scale = 1e-30, diff = 0.0;
            for (int i = 0; i < RES_FLOATS; i++) scale = fmax(scale, fabs(rp[i]));
            for (int i = 0; i < RES_FLOATS; i++) diff = fmax(diff, fabs(rp[i] - ra[i]));
            worst_diff = fmax(worst_diff, diff / scale);
        }
    }
    free(rp);
    free(ra);
}

// adamw_step on the dispatched path against the scalar formula written out in floats.
static void check_adamw(void) {
    enum { NP = 4096 * 2 + 13 };
    float *p = malloc(NP * sizeof(float)), *g = malloc(NP * sizeof(float));
    float *q = malloc(NP * sizeof(float)), *m = calloc(NP, sizeof(float));
    float *v = calloc(NP, sizeof(float));
    if (!p || !g || !q || !m || !v) test_fail("out of memory");
    fill(p, NP, -1.0f, 1.0f);
    memcpy(q, p, NP * sizeof(float));
    adamw_config cfg = {1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f};
    adamw_state st;
    if (adamw_init(&st, &cfg, NP)) test_fail("adamw_init");
    for (int step = 1; step <= 3; step++) {
        fill(g, NP, -0.5f, 0.5f);
        adamw_step(&st, p, g, cfg.lr);
        const double bc1 = 1.0 - pow((double)cfg.beta1, step);
        const double bc2 = 1.0 - pow((double)cfg.beta2, step);
        const float step_size = (float)((double)cfg.lr / bc1), bc2_sqrt = (float)sqrt(bc2);
        const float decay = (float)(1.0 - (double)cfg.lr * (double)cfg.weight_decay);
        for (int i = 0; i < NP; i++) {
            q[i] *= decay;
            m[i] = m[i] * cfg.beta1 + g[i] * (1.0f - cfg.beta1);
            v[i] = v[i] * cfg.beta2 + (1.0f - cfg.beta2) * g[i] * g[i];
            const float denom = sqrtf(v[i]) / bc2_sqrt + cfg.eps;
            q[i] += -step_size * (m[i] / denom);
        }
        if (memcmp(p, q, NP * sizeof(float)) || memcmp(st.m, m, NP * sizeof(float)) ||
            memcmp(st.v, v, NP * sizeof(float)))
            test_fail("adamw_step (%s path) differs from its scalar formula at step %d",
                      cpu_avx2_fma() ? "avx2" : "portable", step);
    }
    adamw_free(&st);
    free(p), free(g), free(q), free(m), free(v);
}

int main(void) {
    rng_init(&rng, 12);
    const char *forced = getenv("MEDTUNE_NO_AVX2");
    const int no_avx2 = forced && forced[0] && strcmp(forced, "0");
    const ops_vec *portable = ops_vec_portable(), *avx2 = ops_vec_avx2();
    const ops_vec *chosen = ops_vec_get();
    printf("dispatched: %s (MEDTUNE_NO_AVX2=%s)\n", chosen->isa, forced ? forced : "unset");
    if (no_avx2 && (chosen != portable || avx2))
        test_fail("MEDTUNE_NO_AVX2=%s but the %s kernels were chosen", forced, chosen->isa);
    if (!no_avx2 && avx2 && chosen != avx2) test_fail("the CPU has AVX2 but %s was chosen", chosen->isa);
    check_exp(portable);
    if (avx2) check_exp(avx2);
    check_versions(portable, avx2);
    if (avx2) printf("largest difference avx2 vs portable (relative to the output's max): %.3g\n", worst_diff);
    check_adamw();
    if (!avx2 && !no_avx2) printf("note: this CPU has no AVX2 + FMA, only the portable kernels ran\n");
    printf("ops_vec: ok\n");
    return 0;
}
