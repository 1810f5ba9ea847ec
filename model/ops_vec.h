// The loops of the training step that run outside BLAS, on one row or one block of elements:
// a table of kernels with a portable version (model/ops_vec.c, plain C at the build's
// x86-64-v2) and an AVX2 + FMA version (model/ops_avx2.c), chosen once per process by
// common/cpu.h (MEDTUNE_NO_AVX2=1 forces the portable one). The callers (model/ops.c,
// model/attention.c, model/transformer.c) keep the OpenMP loops over rows and fixed blocks, so
// which thread runs a kernel never changes a result.
//
// Both versions compute exp with the same algorithm (ops_vec_expf below). They differ in
// rounding only: the AVX2 one fuses multiply-adds and sums reductions (dot products, sums of
// squares, sums of exponentials) in 8 lanes, the portable one sums in order. Element-wise
// kernels without exp and without a multiply-add (add, scale) give the same bits on both.
// docs/training.md#simd-kernels gives the measured differences.
#ifndef MEDTUNE_MODEL_OPS_VEC_H
#define MEDTUNE_MODEL_OPS_VEC_H

#include <stdint.h>

// exp(x) for every float: x = n ln2 + r with n = rint(x log2 e) and |r| <= ln2/2, exp(r) by its
// degree-7 Taylor polynomial (truncation below 6e-9), times 2^n through the exponent bits.
// Relative error at most OPS_VEC_EXP_MAX_REL_ERR for x in [-87.33, 88] (both versions;
// tests/test_ops_vec.c measures it against double exp). Below -87.33 it returns 0 (the true
// value is under float's smallest normal), above 88 it returns exp(88) (about 1.65e38),
// and NaN stays NaN.
#define OPS_VEC_EXP_MAX_REL_ERR 2e-7
#define OPS_VEC_EXP_LO -87.33654f
#define OPS_VEC_EXP_HI 88.0f
float ops_vec_expf(float x);

typedef struct {
    const char *isa;  // "avx2+fma" or "portable"
    // max of x[0..n), n >= 1
    float (*max)(const float *x, int n);
    // sum of exp(x[i] - shift) in double (the cross-entropy's normaliser)
    double (*sum_exp)(const float *x, int n, float shift);
    // y[i] = exp(x[i] - shift) * scale; returns the float sum of the y[i]. y may alias x.
    float (*exp_shift)(float *y, const float *x, int n, float shift, float scale);
    float (*dot)(const float *a, const float *b, int n);
    // x[i] *= s
    void (*scale)(float *x, int n, float s);
    // y[i] += x[i]
    void (*add)(float *y, const float *x, int n);
    // p[i] *= dp[i] - d (the softmax backward of attention)
    void (*mul_sub)(float *p, const float *dp, float d, int n);
    // One row of RMSNorm: y = w * (x * r), returns r = 1/sqrt(mean(x^2) + eps).
    float (*rmsnorm_row)(float *y, const float *x, const float *w, int C, float eps);
    // dx += r w dy - (r^3/C) x sum(w dy x)
    void (*rmsnorm_row_backward)(float *dx, const float *dy, const float *x, const float *w,
                                 float r, int C);
    // nh heads of D values in place: pairs (j, j + D/2) rotated by cos c[j], sin sign * s[j].
    void (*rope_row)(float *x, const float *c, const float *s, int nh, int D, float sign);
    // As model/ops.h's swiglu_* and geglu_*, on n elements.
    void (*swiglu_forward)(float *h, const float *g, const float *u, int n);
    void (*swiglu_backward)(float *dg, float *du, const float *dh, const float *g,
                            const float *u, int n);
    void (*geglu_forward)(float *h, const float *g, const float *u, int n);
    void (*geglu_backward)(float *dg, float *du, const float *dh, const float *g,
                           const float *u, int n);
} ops_vec;

// The table of this process (AVX2 when the CPU has it and MEDTUNE_NO_AVX2 is unset).
const ops_vec *ops_vec_get(void);
// Each version by name, for the tests: the AVX2 one is NULL where the CPU lacks it (or the
// architecture is not x86).
const ops_vec *ops_vec_portable(void);
const ops_vec *ops_vec_avx2(void);

// Elements per block of the element-wise kernels in the callers' parallel loops: fixed, so
// the blocks do not depend on the thread count.
enum { OPS_VEC_BLOCK = 4096 };

#endif
