#include "optim/adamw.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

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

void adamw_step(adamw_state *s, float *params, const float *grads, float lr) {
    const adamw_config *c = &s->cfg;
    s->step++;
    // torch computes the bias corrections in double and applies them in fp32 tensors.
    const double bc1 = 1.0 - pow((double)c->beta1, (double)s->step);
    const double bc2 = 1.0 - pow((double)c->beta2, (double)s->step);
    const float step_size = (float)((double)lr / bc1);
    const float bc2_sqrt = (float)sqrt(bc2);
    const float decay = (float)(1.0 - (double)lr * (double)c->weight_decay);
    const float b1 = c->beta1, b2 = c->beta2, one_b1 = 1.0f - c->beta1, one_b2 = 1.0f - c->beta2;
    float *m = s->m, *v = s->v;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < s->n; i++) {
        float g = grads[i];
        params[i] *= decay;
        m[i] = m[i] * b1 + g * one_b1;
        v[i] = v[i] * b2 + one_b2 * g * g;
        float denom = sqrtf(v[i]) / bc2_sqrt + c->eps;
        params[i] += -step_size * (m[i] / denom);
    }
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
