#include "optim/adamw.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/cpu.h"
#include "common/error.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

int adamw_init(adamw_state *s, const adamw_config *cfg, size_t n) {
    memset(s, 0, sizeof *s);
    s->cfg = *cfg;
    s->n = n;
    s->m = calloc(n ? n : 1, sizeof(float));
    s->v = calloc(n ? n : 1, sizeof(float));
    if (!s->m || !s->v) {
        adamw_free(s);
        return err_set("adamw: out of memory for %zu parameters", n);
    }
    return 0;
}

void adamw_free(adamw_state *s) {
    free(s->m);
    free(s->v);
    memset(s, 0, sizeof *s);
}

// The constants of one step's update.
typedef struct {
    float decay, b1, b2, one_b1, one_b2, bc2_sqrt, eps, step_size;
} adamw_step_consts;

static void update_portable(float *p, float *m, float *v, const float *g, size_t n,
                            const adamw_step_consts *k) {
    for (size_t i = 0; i < n; i++) {
        p[i] *= k->decay;
        m[i] = m[i] * k->b1 + g[i] * k->one_b1;
        v[i] = v[i] * k->b2 + k->one_b2 * g[i] * g[i];
        const float denom = sqrtf(v[i]) / k->bc2_sqrt + k->eps;
        p[i] += -k->step_size * (m[i] / denom);
    }
}

#if defined(__x86_64__) || defined(__i386__)
// update_portable in 8 lanes: the same IEEE operations in the same order, none fused (square
// root and division are correctly rounded in both), so both versions give the same bits and
// the optimizer state does not depend on the CPU. The tail runs update_portable.
__attribute__((target("avx2"))) static void update_avx2(float *p, float *m, float *v,
                                                        const float *g, size_t n,
                                                        const adamw_step_consts *k) {
    const __m256 decay = _mm256_set1_ps(k->decay), b1 = _mm256_set1_ps(k->b1);
    const __m256 b2 = _mm256_set1_ps(k->b2), one_b1 = _mm256_set1_ps(k->one_b1);
    const __m256 one_b2 = _mm256_set1_ps(k->one_b2), bc2 = _mm256_set1_ps(k->bc2_sqrt);
    const __m256 eps = _mm256_set1_ps(k->eps), step = _mm256_set1_ps(-k->step_size);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 gv = _mm256_loadu_ps(g + i);
        const __m256 pv = _mm256_mul_ps(_mm256_loadu_ps(p + i), decay);
        const __m256 mv = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(m + i), b1),
                                        _mm256_mul_ps(gv, one_b1));
        const __m256 vv = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(v + i), b2),
                                        _mm256_mul_ps(_mm256_mul_ps(one_b2, gv), gv));
        const __m256 denom = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vv), bc2), eps);
        _mm256_storeu_ps(m + i, mv);
        _mm256_storeu_ps(v + i, vv);
        _mm256_storeu_ps(p + i, _mm256_add_ps(pv, _mm256_mul_ps(step, _mm256_div_ps(mv, denom))));
    }
    update_portable(p + i, m + i, v + i, g + i, n - i, k);
}
#endif

// Parameters per block of the parallel loop: fixed, like every split of the step.
enum { ADAMW_BLOCK = 4096 };

void adamw_step(adamw_state *s, float *params, const float *grads, float lr) {
    const adamw_config *c = &s->cfg;
    s->step++;
    // torch computes the bias corrections in double and applies them in fp32 tensors.
    const double bc1 = 1.0 - pow((double)c->beta1, (double)s->step);
    const double bc2 = 1.0 - pow((double)c->beta2, (double)s->step);
    const adamw_step_consts k = {
        .decay = (float)(1.0 - (double)lr * (double)c->weight_decay),
        .b1 = c->beta1,
        .b2 = c->beta2,
        .one_b1 = 1.0f - c->beta1,
        .one_b2 = 1.0f - c->beta2,
        .bc2_sqrt = (float)sqrt(bc2),
        .eps = c->eps,
        .step_size = (float)((double)lr / bc1),
    };
    void (*update)(float *, float *, float *, const float *, size_t, const adamw_step_consts *) =
        update_portable;
#if defined(__x86_64__) || defined(__i386__)
    if (cpu_avx2_fma()) update = update_avx2;
#endif
    const size_t n = s->n;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i += ADAMW_BLOCK)
        update(params + i, s->m + i, s->v + i, grads + i, n - i < ADAMW_BLOCK ? n - i : ADAMW_BLOCK,
               &k);
}

float grad_clip_global_norm(float *grads, size_t n, float max_norm) {
    // Blocks summed in a fixed order: the norm is bit-identical whatever the thread count.
    enum { MAX_BLOCKS = 4096 };
    double block_ss[MAX_BLOCKS];
    size_t block = (n + MAX_BLOCKS - 1) / MAX_BLOCKS;
    if (block < 4096) block = 4096;
    size_t n_blocks = (n + block - 1) / block;
#pragma omp parallel for schedule(static)
    for (size_t b = 0; b < n_blocks; b++) {
        size_t end = (b + 1) * block < n ? (b + 1) * block : n;
        double acc = 0.0;
        for (size_t i = b * block; i < end; i++) acc += (double)grads[i] * grads[i];
        block_ss[b] = acc;
    }
    double ss = 0.0;
    for (size_t b = 0; b < n_blocks; b++) ss += block_ss[b];
    float norm = (float)sqrt(ss);
    if (max_norm > 0.0f) {
        float coef = max_norm / (norm + 1e-6f);
        if (coef < 1.0f)
            for (size_t i = 0; i < n; i++) grads[i] *= coef;
    }
    return norm;
}
