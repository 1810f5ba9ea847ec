// Finite-difference checks of every hand-written backward pass in model/ (ops, attention,
// linear, LoRA), so an edit there is tested without the PyTorch twin.
//
// For each op the test holds a naive double-precision forward written from the definition.
// With a fixed random R the objective is L = sum(out * R), so the backward gets dout = R; its
// fp32 result is compared with central differences of the double forward (step 1e-4, where
// truncation and rounding stay below 1e-9), and the fp32 forward is compared with the double
// one. Errors are max|got - want| / max|want|. Every gradient buffer is pre-filled with known
// values: where the header says the backward accumulates (+=) they must be kept, and where it
// says it overwrites they must be gone, so a switch between = and += fails.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "model/attention.h"
#include "model/lora.h"
#include "model/ops.h"
#include "tests/testlib.h"

#define FD_STEP 1e-4
// The worst error seen over 40 seeds is 1e-6 (forward and backward); 1e-4 would still pass a
// cross-entropy whose exp is accurate to only 1e-5.
#define TOL 1e-5
// Normalisation floor, for gradients that are exactly zero (attention with one key).
#define ERR_FLOOR 1e-6

static rng_state rng;

// ---------------------------------------------------------------- buffers and comparisons

// Every buffer of one case lives here until pool_free(), so no case leaks under ASan.
static void *pool[64];
static int n_pool;

static void *pool_alloc(size_t bytes) {
    if (n_pool == (int)(sizeof pool / sizeof pool[0])) test_fail("test_ops: pool full");
    void *p = calloc(1, bytes ? bytes : 1);
    if (!p) test_fail("test_ops: out of memory");
    return pool[n_pool++] = p;
}

static void pool_free(void) {
    while (n_pool > 0) free(pool[--n_pool]);
}

static float *rand_floats(int64_t n, float lo, float hi) {
    float *x = pool_alloc((size_t)n * sizeof *x);
    for (int64_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * rng_uniform(&rng);
    return x;
}

static float *copy_floats(const float *x, int64_t n) {
    float *y = pool_alloc((size_t)n * sizeof *y);
    memcpy(y, x, (size_t)n * sizeof *y);
    return y;
}

static double *new_doubles(int64_t n) { return pool_alloc((size_t)n * sizeof(double)); }

static double *to_doubles(const float *x, int64_t n) {
    double *y = new_doubles(n);
    for (int64_t i = 0; i < n; i++) y[i] = (double)x[i];
    return y;
}

static double dot(const double *a, const double *b, int64_t n) {
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

// max|got - base - want| / max(max|want|, floor); base (the pre-filled values an
// accumulating backward must keep) may be NULL. NaN counts as an infinite error.
static double rel_err_floor(const float *got, const float *base, const double *want, int64_t n,
                            double floor) {
    double num = 0.0, den = floor;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (base ? (double)base[i] : 0.0) - want[i]);
        if (isnan(d)) return INFINITY;
        num = d > num ? d : num;
        den = fabs(want[i]) > den ? fabs(want[i]) : den;
    }
    return num / den;
}

// Fails the test when the error exceeds TOL; returns it so callers can keep the worst.
static double check_floor(const char *what, const float *got, const float *base,
                          const double *want, int64_t n, double floor) {
    double e = rel_err_floor(got, base, want, n, floor);
    if (!(e <= TOL)) test_fail("%s: error %.3g exceeds %.0e", what, e, TOL);
    return e;
}

static double check(const char *what, const float *got, const float *base, const double *want,
                    int64_t n) {
    double e = rel_err_floor(got, base, want, n, ERR_FLOOR);
    if (!(e <= TOL)) test_fail("%s: error %.3g exceeds %.0e", what, e, TOL);
    return e;
}

static double max2(double a, double b) { return a > b ? a : b; }

typedef double (*objective_fn)(void *ctx);

// g[i] = dL/dx[i] by central differences of the double objective; x (inside ctx) is restored.
static void fd_gradient(double *g, double *x, int64_t n, objective_fn f, void *ctx) {
    for (int64_t i = 0; i < n; i++) {
        double x0 = x[i];
        x[i] = x0 + FD_STEP;
        double up = f(ctx);
        x[i] = x0 - FD_STEP;
        double down = f(ctx);
        x[i] = x0;
        g[i] = (up - down) / (2.0 * FD_STEP);
    }
}

static void report(const char *op, double fwd, double bwd, const char *cases) {
    printf("%-13s forward %.1e  backward %.1e  (%s)\n", op, fwd, bwd, cases);
}

// ---------------------------------------------------------------- rmsnorm

typedef struct {
    int N, C;
    double eps;
    double *x, *w, *R, *out, *rstd;
} rmsnorm_ref;

static void rmsnorm_ref_forward(rmsnorm_ref *c) {
    for (int n = 0; n < c->N; n++) {
        const double *x = c->x + (int64_t)n * c->C;
        double ss = 0.0;
        for (int i = 0; i < c->C; i++) ss += x[i] * x[i];
        c->rstd[n] = 1.0 / sqrt(ss / c->C + c->eps);
        for (int i = 0; i < c->C; i++) c->out[(int64_t)n * c->C + i] = c->w[i] * x[i] * c->rstd[n];
    }
}

static double rmsnorm_objective(void *p) {
    rmsnorm_ref *c = p;
    rmsnorm_ref_forward(c);
    return dot(c->out, c->R, (int64_t)c->N * c->C);
}

static void test_rmsnorm(void) {
    const int N = 3, C = 24;
    const float eps = 1e-5f;
    float *x = rand_floats(N * C, -2.0f, 2.0f), *w = rand_floats(C, 0.5f, 1.5f);
    // A small row, where eps is 1% of mean(x^2), so a forward without eps fails.
    for (int i = 0; i < C; i++) x[2 * C + i] *= 0.05f;
    float *R = rand_floats(N * C, -1.0f, 1.0f);
    float *out = rand_floats(N * C, -9.0f, 9.0f), *rstd = rand_floats(N, -9.0f, 9.0f);
    rmsnorm_forward(out, rstd, x, w, N, C, eps);

    rmsnorm_ref c = {N, C, eps, to_doubles(x, N * C), to_doubles(w, C), to_doubles(R, N * C),
                     new_doubles(N * C), new_doubles(N)};
    rmsnorm_ref_forward(&c);
    double fwd = max2(check("rmsnorm_forward out", out, NULL, c.out, N * C),
                      check("rmsnorm_forward rstd", rstd, NULL, c.rstd, N));

    float *dx0 = rand_floats(N * C, -1.0f, 1.0f), *dx = copy_floats(dx0, N * C);
    rmsnorm_backward(dx, R, x, w, rstd, N, C);
    double *g = new_doubles(N * C);
    fd_gradient(g, c.x, N * C, rmsnorm_objective, &c);
    double bwd = check("rmsnorm_backward dinp (+=)", dx, dx0, g, N * C);
    report("rmsnorm", fwd, bwd, "N=3 C=24, one row of scale 0.05");
    pool_free();
}

// ---------------------------------------------------------------- rope

// inv_freq in double from the definitions: theta^(-2j/D), then transformers' llama3 bands
// (wavelengths above original_max/low_freq_factor divided by factor, below
// original_max/high_freq_factor kept, blended in between). Linear scaling divides positions.
static void rope_ref_inv_freq(double *f, int D, const model_config *cfg) {
    for (int j = 0; j < D / 2; j++) {
        f[j] = pow((double)cfg->rope_theta, -2.0 * j / D);
        if (cfg->rope_scaling == ROPE_SCALING_LINEAR) f[j] /= cfg->rope_factor;
        if (cfg->rope_scaling != ROPE_SCALING_LLAMA3) continue;
        double wavelen = 2.0 * M_PI / f[j], ctx = cfg->rope_original_max_position;
        double lo = cfg->rope_low_freq_factor, hi = cfg->rope_high_freq_factor;
        if (wavelen > ctx / lo) {
            f[j] /= cfg->rope_factor;
        } else if (wavelen >= ctx / hi) {
            double smooth = (ctx / wavelen - lo) / (hi - lo);
            f[j] = (1.0 - smooth) * f[j] / cfg->rope_factor + smooth * f[j];
        }
    }
}

typedef struct {
    int N, nh, D;
    const int32_t *pos;
    double *inv_freq, *x, *R, *out;
} rope_ref;

static void rope_ref_forward(rope_ref *c) {
    const int half = c->D / 2;
    for (int n = 0; n < c->N; n++)
        for (int h = 0; h < c->nh; h++) {
            const double *x = c->x + ((int64_t)n * c->nh + h) * c->D;
            double *y = c->out + ((int64_t)n * c->nh + h) * c->D;
            for (int j = 0; j < half; j++) {
                double a = c->pos[n] * c->inv_freq[j];
                y[j] = x[j] * cos(a) - x[j + half] * sin(a);
                y[j + half] = x[j + half] * cos(a) + x[j] * sin(a);
            }
        }
}

static double rope_objective(void *p) {
    rope_ref *c = p;
    rope_ref_forward(c);
    return dot(c->out, c->R, (int64_t)c->N * c->nh * c->D);
}

static void rope_case(const model_config *cfg, const char *name, double *fwd, double *bwd) {
    enum { N = 5, NH = 3, D = 8, P = 16, HALF = D / 2 };
    const int32_t pos[N] = {0, 3, 7, 2, 15};
    char what[96];
    float *cos_t = rand_floats(P * HALF, -9.0f, 9.0f), *sin_t = rand_floats(P * HALF, -9.0f, 9.0f);
    rope_tables_init(cos_t, sin_t, P, D, cfg);
    rope_ref c = {N, NH, D, pos, new_doubles(HALF), NULL, NULL, NULL};
    rope_ref_inv_freq(c.inv_freq, D, cfg);
    double *cos_ref = new_doubles(P * HALF), *sin_ref = new_doubles(P * HALF);
    for (int p = 0; p < P; p++)
        for (int j = 0; j < HALF; j++) {
            cos_ref[p * HALF + j] = cos(p * c.inv_freq[j]);
            sin_ref[p * HALF + j] = sin(p * c.inv_freq[j]);
        }
    snprintf(what, sizeof what, "rope_tables_init %s cos", name);
    *fwd = max2(*fwd, check(what, cos_t, NULL, cos_ref, P * HALF));
    snprintf(what, sizeof what, "rope_tables_init %s sin", name);
    *fwd = max2(*fwd, check(what, sin_t, NULL, sin_ref, P * HALF));

    const int n = N * NH * D;
    float *x = rand_floats(n, -1.0f, 1.0f), *R = rand_floats(n, -1.0f, 1.0f);
    float *y = copy_floats(x, n);
    rope_forward(y, pos, cos_t, sin_t, N, NH, D);
    c.x = to_doubles(x, n);
    c.R = to_doubles(R, n);
    c.out = new_doubles(n);
    rope_ref_forward(&c);
    snprintf(what, sizeof what, "rope_forward %s", name);
    *fwd = max2(*fwd, check(what, y, NULL, c.out, n));

    // In place: the buffer holds dout on entry and dx on return.
    float *dx = copy_floats(R, n);
    rope_backward(dx, pos, cos_t, sin_t, N, NH, D);
    double *g = new_doubles(n);
    fd_gradient(g, c.x, n, rope_objective, &c);
    snprintf(what, sizeof what, "rope_backward %s", name);
    *bwd = max2(*bwd, check(what, dx, NULL, g, n));
    pool_free();
}

static void test_rope(void) {
    model_config cfg = {0};
    cfg.rope_theta = 10000.0f;
    double fwd = 0.0, bwd = 0.0;
    rope_case(&cfg, "default", &fwd, &bwd);
    cfg.rope_scaling = ROPE_SCALING_LINEAR;
    cfg.rope_factor = 4.0f;
    rope_case(&cfg, "linear", &fwd, &bwd);
    // With D=8 the wavelengths are 6.3, 63, 628 and 6283: one in each llama3 band (kept below
    // 16, blended in 16..64, divided above 64).
    cfg.rope_scaling = ROPE_SCALING_LLAMA3;
    cfg.rope_factor = 8.0f;
    cfg.rope_low_freq_factor = 1.0f;
    cfg.rope_high_freq_factor = 4.0f;
    cfg.rope_original_max_position = 64;
    rope_case(&cfg, "llama3", &fwd, &bwd);
    report("rope", fwd, bwd, "N=5 nh=3 D=8, scaling none, linear, llama3");
}

// ---------------------------------------------------------------- swiglu

typedef struct {
    int64_t n;
    double *g, *u, *R;
} swiglu_ref;

static double swiglu_ref_h(double g, double u) { return g / (1.0 + exp(-g)) * u; }

static double swiglu_objective(void *p) {
    swiglu_ref *c = p;
    double s = 0.0;
    for (int64_t i = 0; i < c->n; i++) s += swiglu_ref_h(c->g[i], c->u[i]) * c->R[i];
    return s;
}

static void test_swiglu(void) {
    const int64_t n = 40;
    float *g = rand_floats(n, -6.0f, 6.0f), *u = rand_floats(n, -2.0f, 2.0f);
    float *R = rand_floats(n, -1.0f, 1.0f), *h = rand_floats(n, -9.0f, 9.0f);
    swiglu_forward(h, g, u, n);
    swiglu_ref c = {n, to_doubles(g, n), to_doubles(u, n), to_doubles(R, n)};
    double *h_ref = new_doubles(n);
    for (int64_t i = 0; i < n; i++) h_ref[i] = swiglu_ref_h(c.g[i], c.u[i]);
    double fwd = check("swiglu_forward", h, NULL, h_ref, n);

    float *dg0 = rand_floats(n, -1.0f, 1.0f), *du0 = rand_floats(n, -1.0f, 1.0f);
    float *dg = copy_floats(dg0, n), *du = copy_floats(du0, n);
    swiglu_backward(dg, du, R, g, u, n);
    double *gg = new_doubles(n), *gu = new_doubles(n);
    fd_gradient(gg, c.g, n, swiglu_objective, &c);
    fd_gradient(gu, c.u, n, swiglu_objective, &c);
    double bwd = max2(check("swiglu_backward dg (+=)", dg, dg0, gg, n),
                      check("swiglu_backward du (+=)", du, du0, gu, n));
    report("swiglu", fwd, bwd, "n=40, g in [-6,6]");
    pool_free();
}

// ---------------------------------------------------------------- cross-entropy

typedef struct {
    int N, V;
    const int32_t *targets;
    double grad_scale;
    double *z;
} xent_ref;

// grad_scale * sum over unmasked rows of logsumexp(z) - z[target].
static double xent_objective(void *p) {
    xent_ref *c = p;
    double loss = 0.0;
    for (int n = 0; n < c->N; n++) {
        if (c->targets[n] < 0) continue;
        const double *z = c->z + (int64_t)n * c->V;
        double mx = z[0], sum = 0.0;
        for (int i = 1; i < c->V; i++) mx = z[i] > mx ? z[i] : mx;
        for (int i = 0; i < c->V; i++) sum += exp(z[i] - mx);
        loss += log(sum) + mx - z[c->targets[n]];
    }
    return c->grad_scale * loss;
}

static void test_crossentropy(void) {
    enum { N = 6, V = 37 };
    const int32_t targets[N] = {3, -1, 0, 36, -1, 12};
    const float grad_scale = 0.37f;
    float *z = rand_floats(N * V, -4.0f, 4.0f);
    // A row where exp(z) overflows fp32: the softmax must subtract the row maximum.
    for (int i = 0; i < V; i++) z[3 * V + i] += 100.0f;
    xent_ref c = {N, V, targets, 1.0, to_doubles(z, N * V)};
    double loss_ref = xent_objective(&c);
    c.grad_scale = grad_scale;
    double *g = new_doubles(N * V);
    fd_gradient(g, c.z, N * V, xent_objective, &c);

    // dlogits is overwritten (masked rows with zeros) and *n_targets accumulates.
    float *dz = rand_floats(N * V, -9.0f, 9.0f);
    int64_t count = 5;
    float loss = (float)crossentropy_forward_backward(dz, z, targets, N, V, grad_scale, &count);
    if (count != 5 + 4) test_fail("crossentropy: n_targets %lld, expected 5 + 4", (long long)count);
    double fwd = check("crossentropy loss", &loss, NULL, &loss_ref, 1);
    double bwd = check("crossentropy dlogits (overwritten)", dz, NULL, g, N * V);

    // The training loop passes dlogits == logits.
    float *zz = copy_floats(z, N * V);
    count = 0;
    loss = (float)crossentropy_forward_backward(zz, zz, targets, N, V, grad_scale, &count);
    fwd = max2(fwd, check("crossentropy loss (aliased)", &loss, NULL, &loss_ref, 1));
    bwd = max2(bwd, check("crossentropy dlogits aliasing logits", zz, NULL, g, N * V));
    loss = (float)crossentropy_forward_backward(NULL, z, targets, N, V, grad_scale, &count);
    fwd = max2(fwd, check("crossentropy loss (no dlogits)", &loss, NULL, &loss_ref, 1));
    if (count != 8) test_fail("crossentropy: n_targets %lld after two calls, expected 8", (long long)count);
    report("crossentropy", fwd, bwd, "N=6 V=37, 2 masked, a row at +100, grad_scale 0.37");
    pool_free();
}

// ---------------------------------------------------------------- attention

typedef struct {
    int B, T, H, KV, D;
    const int32_t *start;
    double *q, *k, *v, *R, *out, *lse;
} attention_ref;

static void attention_ref_forward(attention_ref *c) {
    const int T = c->T, H = c->H, D = c->D, KD = c->KV * D;
    for (int b = 0; b < c->B; b++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++) {
                const int kvh = h / (H / c->KV), s0 = c->start[b * T + t];
                const double *q = c->q + ((int64_t)(b * T + t) * H + h) * D;
                double p[T];
                double *o = c->out + ((int64_t)(b * T + t) * H + h) * D;
                double mx = -INFINITY, sum = 0.0;
                for (int s = 0; s < T; s++) {
                    p[s] = 0.0;
                    if (s < s0 || s > t) continue;
                    const double *k = c->k + (int64_t)(b * T + s) * KD + kvh * D;
                    p[s] = dot(q, k, D) / sqrt((double)D);
                    mx = p[s] > mx ? p[s] : mx;
                }
                for (int s = s0; s <= t; s++) sum += p[s] = exp(p[s] - mx);
                c->lse[((int64_t)b * H + h) * T + t] = mx + log(sum);
                for (int i = 0; i < D; i++) o[i] = 0.0;
                for (int s = s0; s <= t; s++) {
                    p[s] /= sum;
                    const double *v = c->v + (int64_t)(b * T + s) * KD + kvh * D;
                    for (int i = 0; i < D; i++) o[i] += p[s] * v[i];
                }
            }
}

static double attention_objective(void *p) {
    attention_ref *c = p;
    attention_ref_forward(c);
    return dot(c->out, c->R, (int64_t)c->B * c->T * c->H * c->D);
}

static void attention_case(const char *name, int B, int T, int H, int KV, const int32_t *start,
                           double *fwd, double *bwd) {
    const int D = 4, n_threads = 2;
    const int64_t nq = (int64_t)B * T * H * D, nk = (int64_t)B * T * KV * D;
    const int64_t nl = (int64_t)B * H * T;
    char what[128];
    float *q = rand_floats(nq, -2.0f, 2.0f), *k = rand_floats(nk, -2.0f, 2.0f);
    float *v = rand_floats(nk, -1.0f, 1.0f), *R = rand_floats(nq, -1.0f, 1.0f);
    float *out = rand_floats(nq, -9.0f, 9.0f), *lse = rand_floats(nl, -9.0f, 9.0f);
    // The scratch starts as garbage in both passes.
    float *scratch =
        rand_floats(attention_scratch_floats(B, T, H, D, n_threads), -9.0f, 9.0f);
    attention_forward(out, lse, scratch, n_threads, q, k, v, start, B, T, H, KV, D);
    attention_ref c = {B, T, H, KV, D, start, to_doubles(q, nq), to_doubles(k, nk),
                       to_doubles(v, nk), to_doubles(R, nq), new_doubles(nq), new_doubles(nl)};
    attention_ref_forward(&c);
    snprintf(what, sizeof what, "attention_forward %s out", name);
    *fwd = max2(*fwd, check(what, out, NULL, c.out, nq));
    snprintf(what, sizeof what, "attention_forward %s lse", name);
    *fwd = max2(*fwd, check(what, lse, NULL, c.lse, nl));

    // dq is overwritten, dk and dv accumulate.
    float *dq = rand_floats(nq, -9.0f, 9.0f);
    float *dk0 = rand_floats(nk, -1.0f, 1.0f), *dk = copy_floats(dk0, nk);
    float *dv0 = rand_floats(nk, -1.0f, 1.0f), *dv = copy_floats(dv0, nk);
    attention_backward(dq, dk, dv, scratch, n_threads, R, out, lse, q, k, v, start, B, T, H, KV,
                       D);
    double *gq = new_doubles(nq), *gk = new_doubles(nk), *gv = new_doubles(nk);
    fd_gradient(gq, c.q, nq, attention_objective, &c);
    fd_gradient(gk, c.k, nk, attention_objective, &c);
    fd_gradient(gv, c.v, nk, attention_objective, &c);
    // dq and dk are normalised by the value gradient's scale as well: the softmax backward
    // uses D_i = rowsum(dO * O) for sum_s P_is dP_is (FlashAttention-2), equal only up to
    // rounding, so a nearly one-hot row gets dq and dk of rounding size (1e-7), not about 0.
    // A row with exactly one key has P = 1 and no score gradient at all: its dq must be 0
    // exactly, as PyTorch's softmax backward gives it (the twin's parity case seq1).
    for (int64_t n = 0; n < (int64_t)B * T; n++)
        for (int64_t i = 0; start[n] == n % T && i < (int64_t)H * D; i++)
            if (dq[n * H * D + i] != 0.0f)
                test_fail("attention_backward %s: row %lld sees one key, dq[%lld] = %g, not 0",
                          name, (long long)n, (long long)i, dq[n * H * D + i]);
    double gscale = ERR_FLOOR;
    for (int64_t i = 0; i < nk; i++) gscale = fabs(gv[i]) > gscale ? fabs(gv[i]) : gscale;
    snprintf(what, sizeof what, "attention_backward %s dq (overwritten)", name);
    *bwd = max2(*bwd, check_floor(what, dq, NULL, gq, nq, gscale));
    snprintf(what, sizeof what, "attention_backward %s dk (+=)", name);
    *bwd = max2(*bwd, check_floor(what, dk, dk0, gk, nk, gscale));
    snprintf(what, sizeof what, "attention_backward %s dv (+=)", name);
    *bwd = max2(*bwd, check(what, dv, dv0, gv, nk));
    pool_free();
}

static void test_attention(void) {
    double fwd = 0.0, bwd = 0.0;
    const int32_t causal[2 * 5] = {0};
    attention_case("causal B=2 T=5 H=4 KV=2", 2, 5, 4, 2, causal, &fwd, &bwd);
    // Packed documents: [0..2][3][4..6] and [0,1][2..4][5,6]; a one-token document included.
    const int32_t docs[2 * 7] = {0, 0, 0, 3, 4, 4, 4, 0, 0, 2, 2, 2, 5, 5};
    attention_case("documents B=2 T=7 H=4 KV=1", 2, 7, 4, 1, docs, &fwd, &bwd);
    attention_case("documents B=2 T=7 H=4 KV=4", 2, 7, 4, 4, docs, &fwd, &bwd);
    // One position: out = v, and q and k get zero gradient (exactly, see above).
    const int32_t one[2] = {0, 0};
    attention_case("B=2 T=1 H=4 KV=2", 2, 1, 4, 2, one, &fwd, &bwd);
    // Three query and key tiles (64, 64, 2 rows): the online softmax across tiles, skipped
    // tiles, and arbitrary lower bounds (a sliding window of random width, a document
    // boundary, and a row whose start is its own position).
    enum { TL = 2 * ATTENTION_TILE_Q + 2 };
    int32_t window[TL];
    uint64_t st = 77;
    for (int t = 0; t < TL; t++) {
        st = st * 6364136223846793005ULL + 1442695040888963407ULL;
        int lo = t - (int)((st >> 33) % 90);
        window[t] = t >= 100 ? (lo > 100 ? lo : 100) : (lo > 0 ? lo : 0);
    }
    window[TL - 1] = TL - 1;
    attention_case("window+document T=130 (3 tiles) H=2 KV=1", 1, TL, 2, 1, window, &fwd, &bwd);
    report("attention", fwd, bwd,
           "D=4; causal, documents, GQA KV=2/1, MHA, T=1, B=2; T=130 over 3 tiles with random "
           "windows");
}

// ---------------------------------------------------------------- linear

typedef struct {
    int N, in, out;
    double *x, *W, *b, *R, *y;
} linear_ref;

static void linear_ref_forward(linear_ref *c) {
    for (int n = 0; n < c->N; n++)
        for (int o = 0; o < c->out; o++)
            c->y[(int64_t)n * c->out + o] = (c->b ? c->b[o] : 0.0) +
                                            dot(c->x + (int64_t)n * c->in,
                                                c->W + (int64_t)o * c->in, c->in);
}

static double linear_objective(void *p) {
    linear_ref *c = p;
    linear_ref_forward(c);
    return dot(c->y, c->R, (int64_t)c->N * c->out);
}

static void test_linear(void) {
    enum { N = 3, IN = 7, OUT = 5 };
    double fwd = 0.0, bwd = 0.0;
    for (int bias = 0; bias <= 1; bias++) {
        float *x = rand_floats(N * IN, -1.0f, 1.0f), *W = rand_floats(OUT * IN, -1.0f, 1.0f);
        float *b = bias ? rand_floats(OUT, -1.0f, 1.0f) : NULL;
        float *R = rand_floats(N * OUT, -1.0f, 1.0f), *y = rand_floats(N * OUT, -9.0f, 9.0f);
        weight_mat Wm;
        weight_mat_f32(&Wm, W, OUT, IN);
        linear_forward(y, x, &Wm, b, N);
        linear_ref c = {N, IN, OUT, to_doubles(x, N * IN), to_doubles(W, OUT * IN),
                        b ? to_doubles(b, OUT) : NULL, to_doubles(R, N * OUT), new_doubles(N * OUT)};
        linear_ref_forward(&c);
        fwd = max2(fwd, check(bias ? "linear_forward with bias (overwritten)"
                                   : "linear_forward (overwritten)",
                              y, NULL, c.y, N * OUT));
        float *dx0 = rand_floats(N * IN, -1.0f, 1.0f), *dx = copy_floats(dx0, N * IN);
        linear_backward(dx, R, &Wm, N);
        double *g = new_doubles(N * IN);
        fd_gradient(g, c.x, N * IN, linear_objective, &c);
        bwd = max2(bwd, check(bias ? "linear_backward with bias dx (+=)" : "linear_backward dx (+=)",
                              dx, dx0, g, N * IN));
        pool_free();
    }
    report("linear", fwd, bwd, "N=3 in=7 out=5, with and without bias");
}

// ---------------------------------------------------------------- LoRA

// y = scale * ((mask * x) A^T) B^T: the LoRA branch of a projection, the dropout mask fixed.
typedef struct {
    int N, in, out, r;
    double scale;
    double *x, *mask, *A, *B, *R, *u, *y;
} lora_ref;

static void lora_ref_forward(lora_ref *c) {
    for (int n = 0; n < c->N; n++) {
        double *u = c->u + (int64_t)n * c->r;
        for (int j = 0; j < c->r; j++) {
            u[j] = 0.0;
            for (int i = 0; i < c->in; i++) {
                int64_t xi = (int64_t)n * c->in + i;
                u[j] += c->mask[xi] * c->x[xi] * c->A[(int64_t)j * c->in + i];
            }
        }
        for (int o = 0; o < c->out; o++)
            c->y[(int64_t)n * c->out + o] = c->scale * dot(u, c->B + (int64_t)o * c->r, c->r);
    }
}

static double lora_objective(void *p) {
    lora_ref *c = p;
    lora_ref_forward(c);
    return dot(c->y, c->R, (int64_t)c->N * c->out);
}

// Without dropout lora_backward writes dxd straight into the pre-filled dx; with dropout the
// test follows model/transformer.c's proj_backward: the mask is drawn again for backward,
// dxd starts at zero and is masked before it is added to dx.
static void lora_case(float p_drop, double *fwd, double *bwd) {
    enum { N = 4, IN = 12, OUT = 6, R_ = 4 };
    const float scale = 6.0f / R_;  // alpha 6, rank 4
    const uint64_t seed = 1234, stream = 77;
    const char *name = p_drop > 0.0f ? "dropout 0.3" : "no dropout";
    char what[128];
    float *x = rand_floats(N * IN, -1.0f, 1.0f), *A = rand_floats(R_ * IN, -0.5f, 0.5f);
    float *B = rand_floats(OUT * R_, -0.5f, 0.5f), *R = rand_floats(N * OUT, -1.0f, 1.0f);
    float *xd = copy_floats(x, N * IN), *ones = pool_alloc(N * IN * sizeof(float));
    for (int i = 0; i < N * IN; i++) ones[i] = 1.0f;
    lora_ref c = {N, IN, OUT, R_, scale, to_doubles(x, N * IN), NULL, to_doubles(A, R_ * IN),
                  to_doubles(B, OUT * R_), to_doubles(R, N * OUT), new_doubles(N * R_),
                  new_doubles(N * OUT)};
    if (p_drop > 0.0f) {
        lora_dropout_apply(xd, x, N * IN, p_drop, seed, stream);
        lora_dropout_apply(ones, ones, N * IN, p_drop, seed, stream);
    }
    c.mask = to_doubles(ones, N * IN);
    int dropped = 0;
    for (int i = 0; i < N * IN; i++) {
        if (c.mask[i] != 0.0 && fabs(c.mask[i] - 1.0 / (1.0 - p_drop)) > 1e-6)
            test_fail("lora_dropout_apply: mask value %g is neither 0 nor 1/(1-p)", c.mask[i]);
        dropped += c.mask[i] == 0.0;
    }
    if (p_drop > 0.0f && (dropped == 0 || dropped == N * IN))
        test_fail("lora_dropout_apply: %d of %d dropped at p=%.1f", dropped, N * IN, p_drop);
    double *xd_ref = new_doubles(N * IN);
    for (int i = 0; i < N * IN; i++) xd_ref[i] = c.mask[i] * c.x[i];
    snprintf(what, sizeof what, "lora_dropout_apply %s", name);
    *fwd = max2(*fwd, check(what, xd, NULL, xd_ref, N * IN));

    // lora_forward adds into y (the base projection's output) and overwrites u.
    float *y0 = rand_floats(N * OUT, -1.0f, 1.0f), *y = copy_floats(y0, N * OUT);
    float *u = rand_floats(N * R_, -9.0f, 9.0f);
    lora_forward(y, u, xd, A, B, scale, N, IN, OUT, R_);
    lora_ref_forward(&c);
    snprintf(what, sizeof what, "lora_forward %s y (+=)", name);
    *fwd = max2(*fwd, check(what, y, y0, c.y, N * OUT));
    snprintf(what, sizeof what, "lora_forward %s u", name);
    *fwd = max2(*fwd, check(what, u, NULL, c.u, N * R_));

    float *dA0 = rand_floats(R_ * IN, -1.0f, 1.0f), *dA = copy_floats(dA0, R_ * IN);
    float *dB0 = rand_floats(OUT * R_, -1.0f, 1.0f), *dB = copy_floats(dB0, OUT * R_);
    float *dx0 = rand_floats(N * IN, -1.0f, 1.0f), *dx = copy_floats(dx0, N * IN);
    float *du = rand_floats(N * R_, -9.0f, 9.0f);
    if (p_drop > 0.0f) {
        float *dxd = pool_alloc(N * IN * sizeof(float));  // zeroed
        lora_backward(dxd, dA, dB, du, R, xd, u, A, B, scale, N, IN, OUT, R_);
        lora_dropout_apply(dxd, dxd, N * IN, p_drop, seed, stream);
        for (int i = 0; i < N * IN; i++) dx[i] += dxd[i];
    } else {
        lora_backward(dx, dA, dB, du, R, xd, u, A, B, scale, N, IN, OUT, R_);
    }
    double *gA = new_doubles(R_ * IN), *gB = new_doubles(OUT * R_), *gx = new_doubles(N * IN);
    fd_gradient(gA, c.A, R_ * IN, lora_objective, &c);
    fd_gradient(gB, c.B, OUT * R_, lora_objective, &c);
    fd_gradient(gx, c.x, N * IN, lora_objective, &c);
    snprintf(what, sizeof what, "lora_backward %s dA (+=)", name);
    *bwd = max2(*bwd, check(what, dA, dA0, gA, R_ * IN));
    snprintf(what, sizeof what, "lora_backward %s dB (+=)", name);
    *bwd = max2(*bwd, check(what, dB, dB0, gB, OUT * R_));
    snprintf(what, sizeof what, "lora_backward %s dx (+=)", name);
    *bwd = max2(*bwd, check(what, dx, dx0, gx, N * IN));
    pool_free();
}

static void test_lora(void) {
    double fwd = 0.0, bwd = 0.0;
    lora_case(0.0f, &fwd, &bwd);
    lora_case(0.3f, &fwd, &bwd);
    report("lora", fwd, bwd, "N=4 in=12 out=6 r=4 scale 1.5, dropout 0 and 0.3");
}

int main(void) {
    rng_init(&rng, 20240611);
    printf("worst max-abs-normalised error (forward: fp32 vs double; backward: vs double "
           "central differences)\n");
    test_rmsnorm();
    test_rope();
    test_swiglu();
    test_crossentropy();
    test_attention();
    test_linear();
    test_lora();
    return 0;
}
