// The portable kernels of model/ops_vec.h and the choice of the table. Plain C, compiled for
// the build's target: no multiply is fused with an add (ISO C mode contracts nothing), and
// every sum runs in index order.
#include "model/ops_vec.h"

#include <math.h>
#include <stddef.h>

#include "common/cpu.h"

// The split of ln 2 into a part with few mantissa bits (n * LN2_HI is exact for |n| <= 128)
// and the rest (Cody and Waite), and log2(e).
#define LN2_HI 0.693145752f
#define LN2_LO 1.42860677e-06f
#define LOG2E 1.44269504f

static inline float exp_portable(float x) {
    if (!(x >= OPS_VEC_EXP_LO)) return x != x ? x : 0.0f;
    x = x > OPS_VEC_EXP_HI ? OPS_VEC_EXP_HI : x;
    const float n = rintf(x * LOG2E);  // in [-126, 127] on this range
    const float r = (x - n * LN2_HI) - n * LN2_LO;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    union {
        uint32_t u;
        float f;
    } scale = {.u = (uint32_t)((int32_t)n + 127) << 23};
    return p * scale.f;
}

float ops_vec_expf(float x) { return exp_portable(x); }

static float max_portable(const float *x, int n) {
    float m = x[0];
    for (int i = 1; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

static double sum_exp_portable(const float *x, int n, float shift) {
    double s = 0.0;
    for (int i = 0; i < n; i++) s += (double)exp_portable(x[i] - shift);
    return s;
}

static float exp_shift_portable(float *y, const float *x, int n, float shift, float scale) {
    float s = 0.0f;
    for (int i = 0; i < n; i++) {
        y[i] = exp_portable(x[i] - shift) * scale;
        s += y[i];
    }
    return s;
}

static float dot_portable(const float *a, const float *b, int n) {
    float s = 0.0f;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static void scale_portable(float *x, int n, float s) {
    for (int i = 0; i < n; i++) x[i] *= s;
}

static void add_portable(float *y, const float *x, int n) {
    for (int i = 0; i < n; i++) y[i] += x[i];
}

static void mul_sub_portable(float *p, const float *dp, float d, int n) {
    for (int i = 0; i < n; i++) p[i] *= dp[i] - d;
}

static float rmsnorm_row_portable(float *y, const float *x, const float *w, int C, float eps) {
    float ss = 0.0f;
    for (int i = 0; i < C; i++) ss += x[i] * x[i];
    const float r = 1.0f / sqrtf(ss / (float)C + eps);
    for (int i = 0; i < C; i++) y[i] = w[i] * (x[i] * r);
    return r;
}

static void rmsnorm_row_backward_portable(float *dx, const float *dy, const float *x,
                                          const float *w, float r, int C) {
    float dot = 0.0f;
    for (int i = 0; i < C; i++) dot += w[i] * dy[i] * x[i];
    const float k = r * r * r * dot / (float)C;
    for (int i = 0; i < C; i++) dx[i] += r * w[i] * dy[i] - k * x[i];
}

static void rope_row_portable(float *x, const float *c, const float *s, int nh, int D,
                              float sign) {
    const int half = D / 2;
    for (int h = 0; h < nh; h++) {
        float *v = x + (int64_t)h * D;
        for (int j = 0; j < half; j++) {
            const float a = v[j], b = v[j + half], sn = sign * s[j];
            v[j] = a * c[j] - b * sn;
            v[j + half] = b * c[j] + a * sn;
        }
    }
}

static void swiglu_forward_portable(float *h, const float *g, const float *u, int n) {
    for (int i = 0; i < n; i++) {
        const float sig = 1.0f / (1.0f + exp_portable(-g[i]));
        h[i] = g[i] * sig * u[i];
    }
}

static void swiglu_backward_portable(float *dg, float *du, const float *dh, const float *g,
                                     const float *u, int n) {
    for (int i = 0; i < n; i++) {
        const float sig = 1.0f / (1.0f + exp_portable(-g[i]));
        dg[i] += dh[i] * u[i] * sig * (1.0f + g[i] * (1.0f - sig));
        du[i] += dh[i] * (g[i] * sig);
    }
}

// sqrt(2/pi) and the cubic coefficient of the tanh approximation of GELU; tanh(y) is
// 1 - 2 / (exp(2y) + 1), which saturates to +-1 without overflow.
#define GELU_K 0.7978845608028654f
#define GELU_C 0.044715f

static inline float gelu_tanh_portable(float x) {
    const float y = GELU_K * (x + GELU_C * x * x * x);
    return 1.0f - 2.0f / (exp_portable(2.0f * y) + 1.0f);
}

static void geglu_forward_portable(float *h, const float *g, const float *u, int n) {
    for (int i = 0; i < n; i++) {
        const float x = g[i], t = gelu_tanh_portable(x);
        h[i] = 0.5f * x * (1.0f + t) * u[i];
    }
}

static void geglu_backward_portable(float *dg, float *du, const float *dh, const float *g,
                                    const float *u, int n) {
    for (int i = 0; i < n; i++) {
        const float x = g[i], t = gelu_tanh_portable(x);
        const float gelu = 0.5f * x * (1.0f + t);
        const float dgelu =
            0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * GELU_K * (1.0f + 3.0f * GELU_C * x * x);
        dg[i] += dh[i] * u[i] * dgelu;
        du[i] += dh[i] * gelu;
    }
}

static const ops_vec portable = {
    .isa = "portable",
    .max = max_portable,
    .sum_exp = sum_exp_portable,
    .exp_shift = exp_shift_portable,
    .dot = dot_portable,
    .scale = scale_portable,
    .add = add_portable,
    .mul_sub = mul_sub_portable,
    .rmsnorm_row = rmsnorm_row_portable,
    .rmsnorm_row_backward = rmsnorm_row_backward_portable,
    .rope_row = rope_row_portable,
    .swiglu_forward = swiglu_forward_portable,
    .swiglu_backward = swiglu_backward_portable,
    .geglu_forward = geglu_forward_portable,
    .geglu_backward = geglu_backward_portable,
};

const ops_vec *ops_vec_portable(void) { return &portable; }

const ops_vec *ops_vec_get(void) {
    const ops_vec *avx2 = cpu_avx2_fma() ? ops_vec_avx2() : NULL;
    return avx2 ? avx2 : &portable;
}
