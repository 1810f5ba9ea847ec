// The AVX2 + FMA kernels of model/ops_vec.h, compiled for those instructions by a function
// attribute (the build stays x86-64-v2) and used only where common/cpu.h found them. Each
// loop runs 8 lanes; its last partial vector goes through masked loads and stores, so every
// element is computed by the same instructions whatever its index.
#include "model/ops_vec.h"

#include <stddef.h>

#include "common/cpu.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma")))

// Lanes i < n of a partial vector (n in 1..8) enabled.
AVX2 static __m256i tail_mask(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

AVX2 static __m256 load(const float *p, int n) {
    return n >= 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, tail_mask(n));
}

AVX2 static void store(float *p, __m256 v, int n) {
    if (n >= 8) _mm256_storeu_ps(p, v);
    else _mm256_maskstore_ps(p, tail_mask(n), v);
}

AVX2 static float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// ops_vec_expf's algorithm in 8 lanes, with fused multiply-adds. min/max take x as their
// second operand, which they return when it is NaN: NaN stays NaN.
AVX2 static __m256 exp8(__m256 x) {
    const __m256 lo = _mm256_set1_ps(OPS_VEC_EXP_LO);
    const __m256 keep = _mm256_cmp_ps(x, lo, _CMP_NLT_UQ);  // x >= lo or NaN
    x = _mm256_min_ps(_mm256_set1_ps(OPS_VEC_EXP_HI), _mm256_max_ps(lo, x));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145752f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.42860677e-06f), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    const __m256i e = _mm256_slli_epi32(
        _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_and_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(e)), keep);
}

AVX2 static float max_avx2(const float *x, int n) {
    __m256 m = _mm256_set1_ps(x[0]);
    for (int i = 0; i < n; i += 8) {
        // A partial vector's disabled lanes load 0: fill them with x[0] instead.
        const __m256 v = i + 8 <= n ? _mm256_loadu_ps(x + i)
                                    : _mm256_blendv_ps(m, load(x + i, n - i),
                                                       _mm256_castsi256_ps(tail_mask(n - i)));
        m = _mm256_max_ps(m, v);
    }
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AVX2 static double sum_exp_avx2(const float *x, int n, float shift) {
    const __m256 sh = _mm256_set1_ps(shift);
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    for (int i = 0; i < n; i += 8) {
        const int k = n - i;
        __m256 e = exp8(_mm256_sub_ps(load(x + i, k), sh));
        if (k < 8) e = _mm256_and_ps(e, _mm256_castsi256_ps(tail_mask(k)));
        s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    __m256d s = _mm256_add_pd(s0, s1);
    __m128d h = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd(s, 1));
    return _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
}

AVX2 static float exp_shift_avx2(float *y, const float *x, int n, float shift, float scale) {
    const __m256 sh = _mm256_set1_ps(shift), sc = _mm256_set1_ps(scale);
    __m256 s = _mm256_setzero_ps();
    for (int i = 0; i < n; i += 8) {
        const int k = n - i;
        __m256 e = _mm256_mul_ps(exp8(_mm256_sub_ps(load(x + i, k), sh)), sc);
        if (k < 8) e = _mm256_and_ps(e, _mm256_castsi256_ps(tail_mask(k)));
        store(y + i, e, k);
        s = _mm256_add_ps(s, e);
    }
    return hsum(s);
}

AVX2 static float dot_avx2(const float *a, const float *b, int n) {
    __m256 s = _mm256_setzero_ps();
    for (int i = 0; i < n; i += 8) s = _mm256_fmadd_ps(load(a + i, n - i), load(b + i, n - i), s);
    return hsum(s);
}

AVX2 static void scale_avx2(float *x, int n, float s) {
    const __m256 v = _mm256_set1_ps(s);
    for (int i = 0; i < n; i += 8) store(x + i, _mm256_mul_ps(load(x + i, n - i), v), n - i);
}

AVX2 static void add_avx2(float *y, const float *x, int n) {
    for (int i = 0; i < n; i += 8)
        store(y + i, _mm256_add_ps(load(y + i, n - i), load(x + i, n - i)), n - i);
}

AVX2 static void mul_sub_avx2(float *p, const float *dp, float d, int n) {
    const __m256 dv = _mm256_set1_ps(d);
    for (int i = 0; i < n; i += 8) {
        const int k = n - i;
        store(p + i, _mm256_mul_ps(load(p + i, k), _mm256_sub_ps(load(dp + i, k), dv)), k);
    }
}

AVX2 static float rmsnorm_row_avx2(float *y, const float *x, const float *w, int C, float eps) {
    __m256 ss = _mm256_setzero_ps();
    for (int i = 0; i < C; i += 8) {
        const __m256 v = load(x + i, C - i);
        ss = _mm256_fmadd_ps(v, v, ss);
    }
    const float r = 1.0f / __builtin_sqrtf(hsum(ss) / (float)C + eps);
    const __m256 rv = _mm256_set1_ps(r);
    for (int i = 0; i < C; i += 8) {
        const int k = C - i;
        store(y + i, _mm256_mul_ps(load(w + i, k), _mm256_mul_ps(load(x + i, k), rv)), k);
    }
    return r;
}

AVX2 static void rmsnorm_row_backward_avx2(float *dx, const float *dy, const float *x,
                                           const float *w, float r, int C) {
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < C; i += 8) {
        const int k = C - i;
        acc = _mm256_fmadd_ps(_mm256_mul_ps(load(w + i, k), load(dy + i, k)), load(x + i, k), acc);
    }
    const float kc = r * r * r * hsum(acc) / (float)C;
    const __m256 rv = _mm256_set1_ps(r), kv = _mm256_set1_ps(kc);
    for (int i = 0; i < C; i += 8) {
        const int k = C - i;
        const __m256 g = _mm256_mul_ps(_mm256_mul_ps(rv, load(w + i, k)), load(dy + i, k));
        store(dx + i, _mm256_add_ps(load(dx + i, k), _mm256_fnmadd_ps(kv, load(x + i, k), g)), k);
    }
}

AVX2 static void rope_row_avx2(float *x, const float *c, const float *s, int nh, int D,
                               float sign) {
    const int half = D / 2;
    const __m256 sg = _mm256_set1_ps(sign);
    for (int h = 0; h < nh; h++) {
        float *v = x + (int64_t)h * D;
        for (int j = 0; j < half; j += 8) {
            const int k = half - j;
            const __m256 a = load(v + j, k), b = load(v + j + half, k), cv = load(c + j, k);
            const __m256 sn = _mm256_mul_ps(sg, load(s + j, k));
            store(v + j, _mm256_fmsub_ps(a, cv, _mm256_mul_ps(b, sn)), k);
            store(v + j + half, _mm256_fmadd_ps(b, cv, _mm256_mul_ps(a, sn)), k);
        }
    }
}

// 1 / (1 + exp(-g))
AVX2 static __m256 sigmoid8(__m256 g) {
    const __m256 one = _mm256_set1_ps(1.0f);
    return _mm256_div_ps(one, _mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), g))));
}

AVX2 static void swiglu_forward_avx2(float *h, const float *g, const float *u, int n) {
    for (int i = 0; i < n; i += 8) {
        const int k = n - i;
        const __m256 gv = load(g + i, k);
        store(h + i, _mm256_mul_ps(_mm256_mul_ps(gv, sigmoid8(gv)), load(u + i, k)), k);
    }
}

AVX2 static void swiglu_backward_avx2(float *dg, float *du, const float *dh, const float *g,
                                      const float *u, int n) {
    const __m256 one = _mm256_set1_ps(1.0f);
    for (int i = 0; i < n; i += 8) {
        const int k = n - i;
        const __m256 gv = load(g + i, k), dhv = load(dh + i, k), sig = sigmoid8(gv);
        // silu'(g) = sig (1 + g (1 - sig))
        const __m256 d = _mm256_mul_ps(sig, _mm256_fmadd_ps(gv, _mm256_sub_ps(one, sig), one));
        const __m256 dgu = _mm256_mul_ps(_mm256_mul_ps(dhv, load(u + i, k)), d);
        store(dg + i, _mm256_add_ps(load(dg + i, k), dgu), k);
        store(du + i, _mm256_fmadd_ps(dhv, _mm256_mul_ps(gv, sig), load(du + i, k)), k);
    }
}

#define GELU_K 0.7978845608028654f
#define GELU_C 0.044715f

// tanh(sqrt(2/pi) (x + 0.044715 x^3)) as 1 - 2 / (exp(2y) + 1)
AVX2 static __m256 gelu_tanh8(__m256 x) {
    const __m256 one = _mm256_set1_ps(1.0f);
    const __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
    const __m256 y = _mm256_mul_ps(_mm256_set1_ps(GELU_K),
                                   _mm256_fmadd_ps(_mm256_set1_ps(GELU_C), x3, x));
    const __m256 e = exp8(_mm256_add_ps(y, y));
    return _mm256_sub_ps(one, _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(e, one)));
}

AVX2 static void geglu_forward_avx2(float *h, const float *g, const float *u, int n) {
    const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
    for (int i = 0; i < n; i += 8) {
        const int k = n - i;
        const __m256 x = load(g + i, k), t = gelu_tanh8(x);
        const __m256 gelu = _mm256_mul_ps(_mm256_mul_ps(half, x), _mm256_add_ps(one, t));
        store(h + i, _mm256_mul_ps(gelu, load(u + i, k)), k);
    }
}

AVX2 static void geglu_backward_avx2(float *dg, float *du, const float *dh, const float *g,
                                     const float *u, int n) {
    const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
    const __m256 kk = _mm256_set1_ps(GELU_K), c3 = _mm256_set1_ps(3.0f * GELU_C);
    for (int i = 0; i < n; i += 8) {
        const int k = n - i;
        const __m256 x = load(g + i, k), t = gelu_tanh8(x), dhv = load(dh + i, k);
        const __m256 onept = _mm256_add_ps(one, t);
        const __m256 gelu = _mm256_mul_ps(_mm256_mul_ps(half, x), onept);
        // 0.5 (1 + t) + 0.5 x (1 - t^2) K (1 + 3 C x^2)
        const __m256 inner = _mm256_mul_ps(kk, _mm256_fmadd_ps(c3, _mm256_mul_ps(x, x), one));
        const __m256 sech2 = _mm256_fnmadd_ps(t, t, one);
        const __m256 dgelu = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_mul_ps(half, x), sech2), inner,
                                             _mm256_mul_ps(half, onept));
        const __m256 dgu = _mm256_mul_ps(_mm256_mul_ps(dhv, load(u + i, k)), dgelu);
        store(dg + i, _mm256_add_ps(load(dg + i, k), dgu), k);
        store(du + i, _mm256_fmadd_ps(dhv, gelu, load(du + i, k)), k);
    }
}

static const ops_vec avx2 = {
    .isa = "avx2+fma",
    .max = max_avx2,
    .sum_exp = sum_exp_avx2,
    .exp_shift = exp_shift_avx2,
    .dot = dot_avx2,
    .scale = scale_avx2,
    .add = add_avx2,
    .mul_sub = mul_sub_avx2,
    .rmsnorm_row = rmsnorm_row_avx2,
    .rmsnorm_row_backward = rmsnorm_row_backward_avx2,
    .rope_row = rope_row_avx2,
    .swiglu_forward = swiglu_forward_avx2,
    .swiglu_backward = swiglu_backward_avx2,
    .geglu_forward = geglu_forward_avx2,
    .geglu_backward = geglu_backward_avx2,
};
#endif

const ops_vec *ops_vec_avx2(void) {
#if defined(__x86_64__) || defined(__i386__)
    if (cpu_avx2_fma()) return &avx2;
#endif
    return NULL;
}
