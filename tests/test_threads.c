// Every computation of a training step gives bit-identical results with 1, 2, 3 and 4 OpenMP
// threads (docs/design.md, section 7), so a run may resume with another thread count:
//   - the cross-entropy loss sum, on rows whose losses span 30 orders of magnitude, where
//     a sum grouped per thread rounds differently for each thread count;
//   - the global gradient norm and clipping, on values of very different magnitudes;
//   - RMSNorm, attention, the linear and LoRA products and the lm_head products at the
//     widths of SmolLM2-135M (hidden 576, FFN 1536, 9 query / 3 KV heads of 64, r 16), where
//     OpenBLAS splits each product over the threads. That part checks OpenBLAS as installed:
//     it fails if an OpenBLAS build makes a product depend on the thread count.
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "model/attention.h"
#include "model/lora.h"
#include "model/ops.h"
#include "optim/adamw.h"
#include "tests/testlib.h"

enum { MAX_THREADS = 4 };

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static float uniform(void) {  // in [-1, 1)
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / 8388608.0)) - 1.0f;
}

static float *random_buf(size_t n, float scale) {
    float *p = malloc(n * sizeof(float));
    if (!p) test_fail("out of memory");
    for (size_t i = 0; i < n; i++) p[i] = uniform() * scale;
    return p;
}

static float *zero_buf(size_t n) {
    float *p = calloc(n, sizeof(float));
    if (!p) test_fail("out of memory");
    return p;
}

static void same_bits(const char *what, int threads, const void *a, const void *b, size_t bytes) {
    if (memcmp(a, b, bytes)) test_fail("%s: %d threads differ from 1 thread", what, threads);
}

static void check_crossentropy(void) {
    const int N = 4096, V = 16;
    float *logits = zero_buf((size_t)N * V), *d1 = zero_buf((size_t)N * V);
    float *d = zero_buf((size_t)N * V);
    int32_t *targets = malloc(N * sizeof(int32_t));
    if (!targets) test_fail("out of memory");
    for (int n = 0; n < N; n++) {
        float *z = logits + (int64_t)n * V;
        for (int i = 0; i < V; i++) z[i] = uniform();
        targets[n] = n % 11 == 0 ? -1 : (int)((uniform() + 1.0f) * 0.5f * V) % V;
        if (n % 7 == 0) z[(targets[n] + 1) % V] = 1e7f;  // loss about 1e7
        if (n % 7 == 3 && targets[n] >= 0) z[targets[n]] = 25.0f + uniform();  // about 1e-10
    }
    int64_t count1 = 0;
    omp_set_num_threads(1);
    double loss1 = crossentropy_forward_backward(d1, logits, targets, N, V, 0.01f, &count1);
    for (int t = 2; t <= MAX_THREADS; t++) {
        omp_set_num_threads(t);
        int64_t count = 0;
        double loss = crossentropy_forward_backward(d, logits, targets, N, V, 0.01f, &count);
        if (loss != loss1 || count != count1)
            test_fail("cross-entropy: %d threads give loss %.17g over %lld targets, 1 thread "
                      "%.17g over %lld",
                      t, loss, (long long)count, loss1, (long long)count1);
        same_bits("cross-entropy gradient", t, d, d1, (size_t)N * V * sizeof(float));
    }
    printf("cross-entropy: loss %.17g identical with 1..%d threads\n", loss1, MAX_THREADS);
    free(logits), free(d1), free(d), free(targets);
}

static void check_grad_clip(void) {
    const size_t n = 3000017;
    float *g0 = random_buf(n, 1.0f);
    for (size_t i = 0; i < n; i += 97) g0[i] *= 1e6f;
    for (size_t i = 5; i < n; i += 89) g0[i] *= 1e-6f;
    float *g1 = malloc(n * sizeof(float)), *g = malloc(n * sizeof(float));
    if (!g1 || !g) test_fail("out of memory");
    memcpy(g1, g0, n * sizeof(float));
    omp_set_num_threads(1);
    float norm1 = grad_clip_global_norm(g1, n, 1.0f);
    for (int t = 2; t <= MAX_THREADS; t++) {
        omp_set_num_threads(t);
        memcpy(g, g0, n * sizeof(float));
        float norm = grad_clip_global_norm(g, n, 1.0f);
        if (memcmp(&norm, &norm1, sizeof norm))
            test_fail("grad norm: %d threads give %.9g, 1 thread %.9g", t, norm, norm1);
        same_bits("clipped gradients", t, g, g1, n * sizeof(float));
    }
    printf("gradient norm: %.9g identical with 1..%d threads\n", norm1, MAX_THREADS);
    free(g0), free(g1), free(g);
}

// One layer's products and reductions at SmolLM2-135M widths, B=2 rows of T=256 tokens.
enum { B = 2, T = 256, N = B * T, C = 576, F = 1536, H = 9, KV = 3, D = 64, R = 16, V = 8192 };

// The buffers one layer_run writes, and their sizes.
enum { XN, RSTD, Q, K, VV, ATT, LSE, UP, DOWN, LU, LOGITS, DXNF, DX, DQ, DK, DV, DUP, DXN, DA,
       DB, DU, N_OUT };
static const size_t SIZES[N_OUT] = {
    [XN] = (size_t)N * C, [RSTD] = N, [Q] = (size_t)N * H * D, [K] = (size_t)N * KV * D,
    [VV] = (size_t)N * KV * D, [ATT] = (size_t)N * H * D, [LSE] = (size_t)B * H * T,
    [UP] = (size_t)N * F, [DOWN] = (size_t)N * C, [LU] = (size_t)N * R, [LOGITS] = (size_t)N * V,
    [DXNF] = (size_t)N * C, [DX] = (size_t)N * C, [DQ] = (size_t)N * H * D,
    [DK] = (size_t)N * KV * D, [DV] = (size_t)N * KV * D, [DUP] = (size_t)N * F,
    [DXN] = (size_t)N * C, [DA] = (size_t)R * C, [DB] = (size_t)F * R, [DU] = (size_t)N * R};
static const char *const NAMES[N_OUT] = {
    "rmsnorm", "rstd", "q", "k", "v", "attention", "lse", "up + LoRA", "down", "LoRA u",
    "lm_head logits", "lm_head backward", "rmsnorm backward", "dq", "dk", "dv", "down backward",
    "LoRA dx", "LoRA dA", "LoRA dB", "LoRA du"};

// Inputs of layer_run.
enum { IN_X, IN_NORM, IN_WQ, IN_WK, IN_WV, IN_WUP, IN_WDOWN, IN_A, IN_B, IN_HEAD, IN_DY, N_IN };

// An fp32 matrix view of a test buffer.
static const weight_mat *mat(weight_mat *w, const float *data, int64_t rows, int64_t cols) {
    weight_mat_f32(w, data, rows, cols);
    return w;
}

// Forward, then backward with the layer's own outputs standing in for incoming gradients.
static void layer_run(float **o, float *const *in, const int32_t *start, float *scratch) {
    weight_mat wm;
    for (int i = 0; i < N_OUT; i++) memset(o[i], 0, SIZES[i] * sizeof(float));
    rmsnorm_forward(o[XN], o[RSTD], in[IN_X], in[IN_NORM], N, C, 1e-5f);
    linear_forward(o[Q], o[XN], mat(&wm, in[IN_WQ], H * D, C), NULL, N);
    linear_forward(o[K], o[XN], mat(&wm, in[IN_WK], KV * D, C), NULL, N);
    linear_forward(o[VV], o[XN], mat(&wm, in[IN_WV], KV * D, C), NULL, N);
    attention_forward(o[ATT], o[LSE], scratch, omp_get_max_threads(), o[Q], o[K], o[VV], start,
                      B, T, H, KV, D);
    linear_forward(o[UP], o[XN], mat(&wm, in[IN_WUP], F, C), NULL, N);
    lora_forward(o[UP], o[LU], o[XN], in[IN_A], in[IN_B], 2.0f, N, C, F, R);
    linear_forward(o[DOWN], o[UP], mat(&wm, in[IN_WDOWN], C, F), NULL, N);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, V, C, 1.0f, o[DOWN], C, in[IN_HEAD],
                C, 0.0f, o[LOGITS], V);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, V, 1.0f, o[LOGITS], V,
                in[IN_HEAD], C, 0.0f, o[DXNF], C);
    rmsnorm_backward(o[DX], in[IN_DY], in[IN_X], in[IN_NORM], o[RSTD], N, C);
    attention_backward(o[DQ], o[DK], o[DV], scratch, omp_get_max_threads(), o[ATT], o[ATT],
                       o[LSE], o[Q], o[K], o[VV], start, B, T, H, KV, D);
    linear_backward(o[DUP], in[IN_DY], mat(&wm, in[IN_WDOWN], C, F), N);
    lora_backward(o[DXN], o[DA], o[DB], o[DU], o[DUP], o[XN], o[LU], in[IN_A], in[IN_B], 2.0f, N,
                  C, F, R);
}

static void check_layer(void) {
    const size_t in_sizes[N_IN] = {
        [IN_X] = (size_t)N * C, [IN_NORM] = C, [IN_WQ] = (size_t)H * D * C,
        [IN_WK] = (size_t)KV * D * C, [IN_WV] = (size_t)KV * D * C, [IN_WUP] = (size_t)F * C,
        [IN_WDOWN] = (size_t)C * F, [IN_A] = (size_t)R * C, [IN_B] = (size_t)F * R,
        [IN_HEAD] = (size_t)V * C, [IN_DY] = (size_t)N * C};
    float *in[N_IN], *ref[N_OUT], *got[N_OUT];
    for (int i = 0; i < N_IN; i++) in[i] = random_buf(in_sizes[i], i == IN_NORM ? 1.0f : 0.1f);
    for (int i = 0; i < N_OUT; i++) ref[i] = zero_buf(SIZES[i]), got[i] = zero_buf(SIZES[i]);
    int32_t *start = calloc(N, sizeof(int32_t));  // causal: every row may attend from 0
    float *scratch = zero_buf((size_t)attention_scratch_floats(B, T, H, D, MAX_THREADS));
    if (!start) test_fail("out of memory");
    omp_set_num_threads(1);
    layer_run(ref, in, start, scratch);
    for (int t = 2; t <= MAX_THREADS; t++) {
        omp_set_num_threads(t);
        layer_run(got, in, start, scratch);
        for (int i = 0; i < N_OUT; i++)
            same_bits(NAMES[i], t, got[i], ref[i], SIZES[i] * sizeof(float));
    }
    printf("a layer at SmolLM2-135M widths and the lm_head products (OpenBLAS %s): identical "
           "with 1..%d threads\n",
           openblas_get_config(), MAX_THREADS);
    for (int i = 0; i < N_OUT; i++) free(ref[i]), free(got[i]);
    for (int i = 0; i < N_IN; i++) free(in[i]);
    free(start), free(scratch);
}

int main(void) {
    check_crossentropy();
    check_grad_clip();
    check_layer();
    printf("PASS\n");
    return 0;
}
