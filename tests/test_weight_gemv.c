// test_weight_gemv: the decoder's few-row products on stored weights (weight_gemv and
// weight_gemv_int8) against a float64 reference, for every type medtune decodes, widths of
// 32-blocks (576, SmolLM2's) and of 256-blocks, 1, 3 and 8 input rows, and enough rows to
// take the threaded path.
//
// Weights are random blocks (random bytes, so every bit pattern of the packed scales and
// quants occurs, with sane fp16 super-block scales) or, for F16/BF16, random normal values;
// their values come from quant_dequantize_row (bit-equal to gguf-py, tests/formats). The
// activations are normal with a few outliers, plus an all-zero block and a row that is zero.
//
// weight_gemv (fp32 activations, any CPU): |y - sum w x| <= 1e-6 of sum |w x|.
// weight_gemv_int8 where the CPU runs an integer kernel (model/weight_dot.h;
// weight_dot_xq_block > 0):
//   - exactness of the kernel: y equals the float64 product of the weights with the
//     activations quantized as documented (per block of 32 or 256: d = max|x| / 127 in fp32,
//     q = x * (127 / max|x|) rounded to nearest even), within fp32 rounding: 1e-6 of
//     sum |w q d|;
//   - the documented accuracy: |y - sum w x| <= sum over blocks of 0.5001 d sum |w| plus
//     1e-6 of sum |w x|;
// elsewhere (F16, BF16, Q5_0, Q5_1; MEDTUNE_NO_AVX2 or no AVX2) it is weight_gemv's bound.
// A NaN activation gives NaN outputs on every path. The bias is added to every output.
//
// `test_weight_gemv group` checks the decoder's grouped products instead (model/weight_group.h):
// groups of 1 to 3 matrices of one width, in mixed types (K-quants with 32-block types, types
// without an integer kernel), with and without biases, for 1, 3 and 8 rows, fp32 and int8
// activations, on 1, 2 and 3 threads: every output equals the separate product's
// (weight_gemv or weight_gemv_int8, themselves checked against float64 above) bit for bit, NaN
// included.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/rng.h"
#include "formats/halfconv.h"
#include "formats/quant.h"
#include "model/weight.h"
#include "model/weight_dot.h"
#include "model/weight_group.h"
#include "testlib.h"

// Relative fp32 rounding budget of a product (sums of up to ~600 block terms, 8 lanes).
#define TOL_FP32 1e-6

static float normal(rng_state *r) {
    float u = rng_uniform(r) + 1e-7f, v = rng_uniform(r);
    return sqrtf(-2.0f * logf(u)) * cosf(6.2831853f * v);
}

static void put_half(uint8_t *p, float v) {
    uint16_t h = f32_to_fp16(v);
    memcpy(p, &h, 2);
}

// Byte offsets of the fp16 scale and (or -1) of the fp16 min/dmin in a block.
static void scale_offsets(uint32_t t, int *d, int *m) {
    *m = -1;
    switch (t) {
    case GGML_TYPE_Q4_1: case GGML_TYPE_Q5_1: case GGML_TYPE_Q4_K: case GGML_TYPE_Q5_K:
        *d = 0, *m = 2;
        break;
    case GGML_TYPE_Q2_K: *d = 80, *m = 82; break;
    case GGML_TYPE_Q3_K: *d = 108; break;
    case GGML_TYPE_Q6_K: *d = 208; break;
    default: *d = 0; break;
    }
}

static void random_rows(uint32_t t, uint8_t *w, int64_t rows, int64_t cols, rng_state *r) {
    const size_t rb = quant_row_bytes(t, cols);
    if (t == GGML_TYPE_F16 || t == GGML_TYPE_BF16) {
        for (int64_t i = 0; i < rows * cols; i++) {
            const float v = 0.02f * normal(r);
            const uint16_t h = t == GGML_TYPE_F16 ? f32_to_fp16(v) : f32_to_bf16(v);
            memcpy(w + 2 * i, &h, 2);
        }
        return;
    }
    for (size_t i = 0; i < rb * (size_t)rows; i++) w[i] = (uint8_t)rng_next(r);
    const size_t bb = quant_block_bytes(t), nb = rb * (size_t)rows / bb;
    int d_off, m_off;
    scale_offsets(t, &d_off, &m_off);
    for (size_t b = 0; b < nb; b++) {
        uint8_t *blk = w + b * bb;
        put_half(blk + d_off, 1e-3f * (0.5f + rng_uniform(r)));
        // A Q4_1/Q5_1 min is signed; a K-quant dmin is subtracted, so positive.
        if (m_off >= 0)
            put_half(blk + m_off, (m_off == 2 && bb <= 24 ? 0.01f * normal(r) : 1e-3f * rng_uniform(r)));
    }
}

static void random_x(float *x, int N, int64_t cols, rng_state *r) {
    for (int n = 0; n < N; n++) {
        float *xn = x + n * cols;
        for (int64_t c = 0; c < cols; c++) xn[c] = normal(r);
        // Outliers, as the residual stream has, and an all-zero block (a zero scale).
        for (int k = 0; k < 4; k++) xn[rng_below(r, (uint64_t)cols)] = 20.0f * normal(r);
        memset(xn + (cols / 2 / 32) * 32, 0, 32 * sizeof *xn);
        if (n == 2) memset(xn, 0, (size_t)cols * sizeof *xn);
    }
}

// x quantized as documented (fp32 arithmetic, as the kernels), back to double.
static void xq_ref(const float *x, double *xh, double *dq, int64_t cols, int blk) {
    for (int64_t b = 0; b < cols / blk; b++) {
        const float *xb = x + b * blk;
        float amax = 0.0f;
        for (int i = 0; i < blk; i++) amax = fmaxf(amax, fabsf(xb[i]));
        const float id = amax > 0.0f ? 127.0f / amax : 0.0f, d = amax / 127.0f;
        for (int i = 0; i < blk; i++) xh[b * blk + i] = (double)lrintf(xb[i] * id) * (double)d;
        dq[b] = d;
    }
}

static int failures;

static void check_case(uint32_t t, int64_t rows, int64_t cols, int N, int int8, rng_state *r,
                       double *worst_rel) {
    const size_t rb = quant_row_bytes(t, cols);
    uint8_t *w = malloc(rb * (size_t)rows);
    float *x = malloc((size_t)(N * cols) * sizeof *x), *y = malloc((size_t)(N * rows) * sizeof *y);
    float *b = malloc((size_t)rows * sizeof *b), *wf = malloc((size_t)cols * sizeof *wf);
    double *xh = malloc((size_t)cols * sizeof *xh), *dq = malloc((size_t)cols * sizeof *dq);
    random_rows(t, w, rows, cols, r);
    random_x(x, N, cols, r);
    for (int64_t i = 0; i < rows; i++) b[i] = 0.1f * normal(r);
    weight_mat W;
    if (weight_mat_init(&W, t, w, rows, cols, "test", "w")) test_fail("%s", err_msg());
    void (*gemv)(float *, const float *, const weight_mat *, const float *, int) =
        int8 ? weight_gemv_int8 : weight_gemv;
    gemv(y, x, &W, b, N);
    const int blk = int8 ? weight_dot_xq_block(t) : 0;
    double err2 = 0.0, ref2 = 0.0;
    for (int n = 0; n < N; n++) {
        const float *xn = x + n * cols;
        if (blk) xq_ref(xn, xh, dq, cols, blk);
        for (int64_t i = 0; i < rows; i++) {
            if (quant_dequantize_row(t, w + i * rb, wf, cols)) test_fail("%s", err_msg());
            double exact = 0, abs_wx = 0, quant = 0, abs_wq = 0, bound = 0;
            for (int64_t c = 0; c < cols; c++) {
                exact += (double)wf[c] * xn[c];
                abs_wx += fabs((double)wf[c] * xn[c]);
                if (!blk) continue;
                quant += (double)wf[c] * xh[c];
                abs_wq += fabs((double)wf[c] * xh[c]);
                bound += 0.5001 * dq[c / blk] * fabs((double)wf[c]);
            }
            const double got = (double)y[n * rows + i] - (double)b[i];
            err2 += (got - exact) * (got - exact);
            ref2 += exact * exact;
            const double e_exact = fabs(got - exact);
            const double slack = 1e-6 * (fabs(b[i]) + fabs(got));  // the bias addition
            const double b_exact = (blk ? bound : 0.0) + TOL_FP32 * abs_wx + slack;
            const double e_quant = fabs(got - quant), b_quant = TOL_FP32 * abs_wq + slack;
            if (!(e_exact <= b_exact) || (blk && !(e_quant <= b_quant))) {
                if (failures++ < 10)
                    printf("FAIL: %s %lldx%lld N=%d row %d out %lld: got %.9g, exact %.9g (error "
                           "%.3g, bound %.3g), quantized-x reference %.9g (error %.3g, bound %.3g)\n",
                           ggml_type_name(t), (long long)rows, (long long)cols, N, n, (long long)i,
                           got, exact, e_exact, b_exact, quant, e_quant, b_quant);
            }
        }
    }
    const double rel = sqrt(err2 / ref2);
    if (rel > *worst_rel) *worst_rel = rel;
    // A NaN activation poisons every output of its row.
    x[cols / 3] = NAN;
    gemv(y, x, &W, b, N);
    for (int64_t i = 0; i < rows; i++)
        if (!isnan(y[i]) && failures++ < 10)
            printf("FAIL: %s: a NaN activation gave the finite output %g (row %lld)\n",
                   ggml_type_name(t), y[i], (long long)i);
    free(w), free(x), free(y), free(b), free(wf), free(xh), free(dq);
}

// One group: random matrices of types[0..k) with `heights` rows and `cols` columns, each
// product run alone and then grouped; the outputs must agree bit for bit.
static void check_group(const uint32_t *types, const int64_t *heights, int k, int64_t cols,
                        int N, int int8, int threads, int nan_row, rng_state *r) {
    uint8_t *w[WEIGHT_GROUP_MAX];
    float *b[WEIGHT_GROUP_MAX], *alone[WEIGHT_GROUP_MAX], *grouped[WEIGHT_GROUP_MAX];
    weight_mat W[WEIGHT_GROUP_MAX];
    weight_group_part parts[WEIGHT_GROUP_MAX];
    float *x = malloc((size_t)(N * cols) * sizeof *x);
    random_x(x, N, cols, r);
    if (nan_row) x[cols + cols / 3] = NAN;
    for (int i = 0; i < k; i++) {
        const int64_t rows = heights[i];
        w[i] = malloc(quant_row_bytes(types[i], cols) * (size_t)rows);
        random_rows(types[i], w[i], rows, cols, r);
        if (weight_mat_init(&W[i], types[i], w[i], rows, cols, "test", "w"))
            test_fail("%s", err_msg());
        // Every other part has a bias, the rest none (weight_gemv adds +0.0f then).
        b[i] = NULL;
        if ((i + N) % 2) {
            b[i] = malloc((size_t)rows * sizeof *b[i]);
            for (int64_t j = 0; j < rows; j++) b[i][j] = 0.1f * normal(r);
        }
        alone[i] = malloc((size_t)(N * rows) * sizeof *alone[i]);
        grouped[i] = malloc((size_t)(N * rows) * sizeof *grouped[i]);
        // A value no product gives, so an output the group leaves unwritten shows.
        for (int64_t j = 0; j < N * rows; j++) grouped[i][j] = 12345.0f;
        (int8 ? weight_gemv_int8 : weight_gemv)(alone[i], x, &W[i], b[i], N);
        parts[i] = (weight_group_part){grouped[i], &W[i], b[i]};
    }
    weight_group_gemv(parts, k, x, N, int8, threads);
    for (int i = 0; i < k; i++) {
        for (int64_t j = 0; j < N * heights[i]; j++) {
            const float a = alone[i][j], g = grouped[i][j];
            if ((isnan(a) && isnan(g)) || memcmp(&a, &g, sizeof a) == 0) continue;
            if (failures++ < 10)
                printf("FAIL: group of %d (part %d %s, %lldx%lld) N=%d int8=%d threads=%d "
                       "output %lld: grouped %.9g, alone %.9g\n",
                       k, i, ggml_type_name(types[i]), (long long)heights[i], (long long)cols, N,
                       int8, threads, (long long)j, g, a);
        }
        free(w[i]), free(b[i]), free(alone[i]), free(grouped[i]);
    }
    free(x);
}

static int main_group(void) {
    // q/k/v and gate/up as llama-family files store them: one type throughout, or Q4_K_M's
    // mix (K-quants with a Q6_K v; 32-block and 256-block types in one group, which need two
    // quantized copies of x), or with a type that has no integer kernel (Q5_0, F16).
    static const struct {
        uint32_t types[WEIGHT_GROUP_MAX];
        int64_t heights[WEIGHT_GROUP_MAX];
        int k;
        int64_t cols;
    } groups[] = {
        {{GGML_TYPE_Q4_K, GGML_TYPE_Q4_K, GGML_TYPE_Q6_K}, {512, 128, 128}, 3, 512},
        {{GGML_TYPE_Q4_1, GGML_TYPE_Q4_1, GGML_TYPE_Q4_1}, {576, 192, 192}, 3, 576},
        {{GGML_TYPE_Q8_0, GGML_TYPE_Q4_K, GGML_TYPE_Q5_0}, {200, 67, 70}, 3, 768},
        {{GGML_TYPE_Q4_K, GGML_TYPE_Q4_0, 0}, {1400, 1400, 0}, 2, 512},
        {{GGML_TYPE_F16, GGML_TYPE_Q3_K, 0}, {96, 160, 0}, 2, 256},
        {{GGML_TYPE_Q2_K, 0, 0}, {130, 0, 0}, 1, 1024},
    };
    static const int Ns[] = {1, 3, 8};
    rng_state r;
    rng_init(&r, 20261127);
    printf("kernels: %s\n", weight_gemv_isa());
    int cases = 0;
    for (size_t g = 0; g < sizeof groups / sizeof *groups; g++)
        for (size_t ni = 0; ni < sizeof Ns / sizeof *Ns; ni++)
            for (int int8 = 0; int8 < 2; int8++)
                for (int threads = 1; threads <= 3; threads++, cases++)
                    check_group(groups[g].types, groups[g].heights, groups[g].k, groups[g].cols,
                                Ns[ni], int8, threads, Ns[ni] > 1 && threads == 2, &r);
    if (failures) test_fail("%d grouped outputs differ from the separate products", failures);
    printf("OK: %d groups equal their separate products bit for bit\n", cases);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "group") == 0) return main_group();
    static const uint32_t types[] = {GGML_TYPE_Q8_0, GGML_TYPE_Q4_0, GGML_TYPE_Q4_1,
                                     GGML_TYPE_Q5_0, GGML_TYPE_Q5_1, GGML_TYPE_Q2_K,
                                     GGML_TYPE_Q3_K, GGML_TYPE_Q4_K, GGML_TYPE_Q5_K,
                                     GGML_TYPE_Q6_K, GGML_TYPE_F16,  GGML_TYPE_BF16};
    static const int Ns[] = {1, 3, 8};
    rng_state r;
    rng_init(&r, 20261126);
    printf("kernels: %s\n", weight_gemv_isa());
    for (size_t k = 0; k < sizeof types / sizeof *types; k++) {
        const uint32_t t = types[k];
        // 576 = 18 blocks of 32 (SmolLM2's width; K-quants need whole 256-blocks); 160 rows x
        // 2048 take the threaded path.
        const int64_t widths[2] = {quant_block_size(t) == QUANT_QK_K ? 256 : 576, 2048};
        const int64_t heights[2] = {67, 160};
        double worst[2] = {0.0, 0.0};
        for (int int8 = 0; int8 < 2; int8++)
            for (int wi = 0; wi < 2; wi++)
                for (size_t ni = 0; ni < sizeof Ns / sizeof *Ns; ni++)
                    check_case(t, heights[wi], widths[wi], Ns[ni], int8, &r, &worst[int8]);
        const int blk = weight_dot_xq_block(t);
        printf("  %-5s relative RMS error vs float64: weight_gemv %.2e, weight_gemv_int8 %.2e "
               "(%s)\n", ggml_type_name(t), worst[0], worst[1],
               blk ? (blk == 32 ? "int8 x per 32" : "int8 x per 256") : "fp32 x");
    }
    if (failures) test_fail("%d products out of bounds", failures);
    printf("OK\n");
    return 0;
}
