#include "model/decoder_step.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "formats/gguf.h"
#include "model/arch.h"
#include "model/ops.h"
#include "model/ops_vec.h"
#include "model/weight_group.h"

size_t decoder_step_xq_bytes(const model_config *c) {
    int64_t w = c->hidden_size;
    const int64_t qd = (int64_t)c->n_heads * c->head_dim;
    if (qd > w) w = qd;
    if (c->intermediate_size > w) w = c->intermediate_size;
    return weight_group_xq_bytes(w, 1);
}

static int quantized(const weight_mat *w) { return w->type != GGML_TYPE_F32; }

int decoder_step_fits(const decoder *d, int64_t parallel_min_weights) {
    const model_config *c = &d->m->cfg;
    if (!d->step_region || d->threads < 2 || d->lora || c->arch == MODEL_ARCH_GPT2 ||
        c->post_norms)
        return 0;
    for (int l = 0; l < c->n_layers; l++) {
        const layer_weights *w = &d->m->layers[l];
        if (!quantized(&w->wq) || !quantized(&w->wk) || !quantized(&w->wv) ||
            !quantized(&w->wo) || !quantized(&w->w_gate) || !quantized(&w->w_up) ||
            !quantized(&w->w_down) || w->attn_norm_b || w->mlp_norm_b)
            return 0;
    }
    // The smallest product of a layer (o: C x H*D) must be worth splitting, as in
    // forward_chunk where each product runs on one thread below that size.
    const int64_t o_weights = (int64_t)c->hidden_size * c->n_heads * c->head_dim;
    return d->step_region == 2 || o_weights >= parallel_min_weights;
}

void decoder_attend_head(decoder *d, int l, int h, int n, int p0, const int *first,
                         const int32_t *pos, int window) {
    const model_config *c = &d->m->cfg;
    const int H = c->n_heads, KV = c->n_kv_heads, D = c->head_dim, QD = H * D, KD = KV * D;
    const int g = h / (H / KV), T = p0 + n, n_ctx = d->cache.n_ctx;
    const float scale = 1.0f / sqrtf((float)D);
    const float *kc = d->cache.k + (int64_t)l * n_ctx * KD;
    const float *vc = d->cache.v + (int64_t)l * n_ctx * KD;
    float *s = d->scores + (int64_t)h * d->max_rows * n_ctx;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, T, D, scale, d->q + (int64_t)h * D,
                QD, kc + (int64_t)g * D, KD, 0.0f, s, T);
    for (int i = 0; i < n; i++) {
        float *row = s + (int64_t)i * T;
        const int last = p0 + i, skip_to = p0 + first[i];
        for (int j = p0; j < skip_to; j++) row[j] = -INFINITY;
        // Key slot j < p0 is at position j, a slot of this branch at pos[i] - (last - j).
        for (int j = 0; window > 0 && j <= last; j++) {
            int key_pos = j < p0 ? j : pos[i] - (last - j);
            if (key_pos <= pos[i] - window) row[j] = -INFINITY;
        }
        float mx = -INFINITY;
        for (int j = 0; j <= last; j++) mx = row[j] > mx ? row[j] : mx;
        float sum = 0.0f;
        for (int j = 0; j <= last; j++) {
            row[j] = expf(row[j] - mx);
            sum += row[j];
        }
        float inv = 1.0f / sum;
        for (int j = 0; j <= last; j++) row[j] *= inv;
        for (int j = last + 1; j < T; j++) row[j] = 0.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, D, T, 1.0f, s, T,
                vc + (int64_t)g * D, KD, 0.0f, d->att + (int64_t)h * D, QD);
}

// Phase 2 for KV group kv of layer l: k's norm and rope, the cache write, then the group's
// query heads (norm, rope, scale, attention). In place as forward_chunk: each element of a
// head's norm or rope depends on that head alone.
static void attend_group(decoder *d, const layer_weights *w, int l, int kv, int32_t pos,
                         int p0) {
    static const int causal[1];
    const model_config *c = &d->m->cfg;
    const ops_vec *ov = ops_vec_get();
    const int H = c->n_heads, KV = c->n_kv_heads, D = c->head_dim, KD = KV * D;
    const int group = H / KV, R = rope_rotary_dim(c);
    const int local = arch_layer_local_rope(c, l);
    const float *rc = local ? d->rope_cos_local : d->rope_cos;
    const float *rs = local ? d->rope_sin_local : d->rope_sin;
    float *k = d->k + (int64_t)kv * D;
    if (c->qk_norm) ov->rmsnorm_row(k, k, w->k_norm, D, c->rms_norm_eps);
    rope_partial_forward(k, &pos, rc, rs, 1, 1, D, R);
    const int64_t at = ((int64_t)l * d->cache.n_ctx + p0) * KD + (int64_t)kv * D;
    memcpy(d->cache.k + at, k, (size_t)D * sizeof(float));
    memcpy(d->cache.v + at, d->v + (int64_t)kv * D, (size_t)D * sizeof(float));
    const int window = arch_layer_sliding(c, l) ? c->sliding_window : 0;
    for (int h = kv * group; h < (kv + 1) * group; h++) {
        float *q = d->q + (int64_t)h * D;
        if (c->qk_norm) ov->rmsnorm_row(q, q, w->q_norm, D, c->rms_norm_eps);
        rope_partial_forward(q, &pos, rc, rs, 1, 1, D, R);
        if (c->q_scale > 0) ov->scale(q, D, c->q_scale);
        decoder_attend_head(d, l, h, 1, p0, causal, &pos, window);
    }
}

// The output rows of task t of a one-part plan, added to the residual stream x.
static void rows_add(const weight_group_plan *g, int64_t t, float *x) {
    const int64_t rows = g->part[0].W->rows, r0 = t * WEIGHT_GROUP_TASK_ROWS;
    const int64_t r1 = r0 + WEIGHT_GROUP_TASK_ROWS < rows ? r0 + WEIGHT_GROUP_TASK_ROWS : rows;
    weight_group_rows(g, 0, r0, r1);
    for (int64_t r = r0; r < r1; r++) x[r] += g->part[0].y[r];
}

static int64_t n_tasks(int64_t rows) {
    return (rows + WEIGHT_GROUP_TASK_ROWS - 1) / WEIGHT_GROUP_TASK_ROWS;
}

void decoder_step_layers(decoder *d, int32_t pos, int p0) {
    const model_config *c = &d->m->cfg;
    const ops_vec *ov = ops_vec_get();
    const int C = c->hidden_size, F = c->intermediate_size, int8 = d->int8_products;
    const float eps = c->rms_norm_eps;
#pragma omp parallel num_threads(d->threads)
    {
        const int tid = omp_get_thread_num();
        float *xn = d->step_xn + (int64_t)tid * C;
        uint8_t *xq = d->step_xq + (size_t)tid * d->step_xq_bytes;
        weight_group_plan g;
        for (int l = 0; l < c->n_layers; l++) {
            const layer_weights *w = &d->m->layers[l];
            ov->rmsnorm_row(xn, d->x, w->attn_norm, C, eps);
            weight_group_prepare(&g,
                                 (const weight_group_part[]){{d->q, &w->wq, w->bq},
                                                             {d->k, &w->wk, w->bk},
                                                             {d->v, &w->wv, w->bv}},
                                 3, xn, 1, int8, xq);
#pragma omp for schedule(static)
            for (int64_t t = 0; t < g.first_task[3]; t++) weight_group_task(&g, t);
#pragma omp for schedule(static)
            for (int kv = 0; kv < c->n_kv_heads; kv++) attend_group(d, w, l, kv, pos, p0);
            weight_group_prepare(&g, (const weight_group_part[]){{d->tmp, &w->wo, w->bo}}, 1,
                                 d->att, 1, int8, xq);
#pragma omp for schedule(static)
            for (int64_t t = 0; t < n_tasks(C); t++) rows_add(&g, t, d->x);
            ov->rmsnorm_row(xn, d->x, w->mlp_norm, C, eps);
            weight_group_prepare(&g,
                                 (const weight_group_part[]){{d->g, &w->w_gate, NULL},
                                                             {d->u, &w->w_up, NULL}},
                                 2, xn, 1, int8, xq);
#pragma omp for schedule(static)
            for (int64_t t = 0; t < n_tasks(F); t++) {
                const int64_t r0 = t * WEIGHT_GROUP_TASK_ROWS;
                const int64_t r1 =
                    r0 + WEIGHT_GROUP_TASK_ROWS < F ? r0 + WEIGHT_GROUP_TASK_ROWS : F;
                weight_group_rows(&g, 0, r0, r1);
                weight_group_rows(&g, 1, r0, r1);
                (c->gelu_mlp ? ov->geglu_forward : ov->swiglu_forward)(d->h + r0, d->g + r0,
                                                                        d->u + r0, (int)(r1 - r0));
            }
            weight_group_prepare(&g,
                                 (const weight_group_part[]){{d->tmp, &w->w_down, w->b_down}},
                                 1, d->h, 1, int8, xq);
#pragma omp for schedule(static)
            for (int64_t t = 0; t < n_tasks(C); t++) rows_add(&g, t, d->x);
        }
    }
}
