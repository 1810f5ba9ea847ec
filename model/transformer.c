#include "model/transformer.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/arena.h"
#include "model/arch.h"
#include "model/attention.h"
#include "model/ops.h"

// Rows per block of the head's input gradient: a fixed split, so sums do not depend on threads.
enum { LM_DX_BLOCK_ROWS = 128 };

// Every buffer of the plan, once: over a sizing carver this adds up the arena's size, over
// the allocation it sets the pointers (common/arena.h). Shapes as in transformer.h.
static void plan_carve(lm_plan *p, arena_carver *a) {
    const model_config *c = &p->m->cfg;
    const lora_adapter *lora = p->lora;
    const int64_t B = p->B, T = p->T, N = p->N, C = c->hidden_size, F = c->intermediate_size;
    const int64_t H = c->n_heads, D = c->head_dim, QD = H * D, KD = (int64_t)c->n_kv_heads * D;
    const int64_t r = lora ? lora->cfg.r : 0;
    int64_t max_in = 0;  // widest input of an enabled LoRA target
    for (int t = 0; t < LORA_N_TARGETS; t++)
        if (lora && lora_enabled(lora, t) && lora->slots[t].in > max_in) max_in = lora->slots[t].in;
    for (int l = 0; l < c->n_layers; l++) {
        layer_acts *s = &p->acts[l];
        ARENA_CARVE(a, s->x, N * C);
        ARENA_CARVE(a, s->xn1, N * C);
        ARENA_CARVE(a, s->rstd1, N);
        ARENA_CARVE(a, s->q, N * QD);
        ARENA_CARVE(a, s->k, N * KD);
        ARENA_CARVE(a, s->v, N * KD);
        ARENA_CARVE(a, s->probs, B * H * T * T);
        ARENA_CARVE(a, s->att, N * QD);
        ARENA_CARVE(a, s->xmid, N * C);
        ARENA_CARVE(a, s->xn2, N * C);
        ARENA_CARVE(a, s->rstd2, N);
        ARENA_CARVE(a, s->g, N * F);
        ARENA_CARVE(a, s->u, N * F);
        ARENA_CARVE(a, s->h, N * F);
        for (int t = 0; t < LORA_N_TARGETS; t++)
            if (lora && lora_enabled(lora, t)) ARENA_CARVE(a, s->lora_u[t], N * r);
    }
    ARENA_CARVE(a, p->x_out, N * C);
    ARENA_CARVE(a, p->xnf, N * C);
    ARENA_CARVE(a, p->rstdf, N);
    ARENA_CARVE(a, p->dxnf, N * C);
    ARENA_CARVE(a, p->dres, N * C);
    ARENA_CARVE(a, p->dxn, N * C);
    ARENA_CARVE(a, p->tmp, N * C);
    ARENA_CARVE(a, p->dq, N * QD);
    ARENA_CARVE(a, p->datt, N * QD);
    ARENA_CARVE(a, p->dk, N * KD);
    ARENA_CARVE(a, p->dv, N * KD);
    ARENA_CARVE(a, p->dg, N * F);
    ARENA_CARVE(a, p->du, N * F);
    ARENA_CARVE(a, p->dh, N * F);
    ARENA_CARVE(a, p->attn_scratch, attention_scratch_floats(p->T) * p->max_threads);
    ARENA_CARVE(a, p->lora_du, N * r);
    const int dropout = lora && lora->cfg.dropout > 0.0f;
    ARENA_CARVE(a, p->xd, dropout ? N * max_in : 0);
    ARENA_CARVE(a, p->dxd, dropout ? N * max_in : 0);
    ARENA_CARVE(a, p->logits, (int64_t)p->chunk_rows * c->vocab_size);
    ARENA_CARVE(a, p->rope_cos, T * D / 2);
    ARENA_CARVE(a, p->rope_sin, T * D / 2);
    ARENA_CARVE(a, p->pos, N);
    ARENA_CARVE(a, p->start, N);
}

int lm_plan_init(lm_plan *p, const model *m, const lora_adapter *lora, int B, int T) {
    memset(p, 0, sizeof *p);
    const model_config *c = &m->cfg;
    if (B <= 0 || T <= 0) return err_set("plan: batch %d x seq_len %d must be positive", B, T);
    // Learned positions end at the table; rotary ones are only limited by the tables built here.
    if (c->arch == MODEL_ARCH_GPT2 && T > c->max_position_embeddings)
        return err_set("plan: seq_len %d exceeds the model's %d positions (n_positions)", T,
                       c->max_position_embeddings);
    p->m = m;
    p->lora = lora;
    p->B = B;
    p->T = T;
    p->N = B * T;
    p->max_threads = omp_get_max_threads();
    p->chunk_rows = LM_LOGITS_CHUNK_FLOATS / c->vocab_size;
    if (p->chunk_rows < 1) p->chunk_rows = 1;
    if (p->chunk_rows > p->N) p->chunk_rows = p->N;
    p->acts = calloc((size_t)c->n_layers, sizeof(layer_acts));
    if (!p->acts) return err_set("plan: out of memory for %d layers", c->n_layers);
    arena_carver sizing = {0};
    plan_carve(p, &sizing);
    p->arena_bytes = sizing.used;
    p->arena = arena_alloc(&sizing);
    if (!p->arena) {
        lm_plan_free(p);
        return err_set("plan: out of memory for activations of batch %d x seq_len %d (%.1f GB)",
                       B, T, (double)sizing.used / 1e9);
    }
    arena_carver carving = {.base = p->arena};
    plan_carve(p, &carving);
    // Both passes run the same list, so this only fails if the list came to depend on state
    // that changed between them: refuse rather than hand out slices past the allocation.
    if (carving.used != sizing.used) {
        lm_plan_free(p);
        return err_set("plan: internal error: %zu bytes carved from a %zu-byte arena",
                       carving.used, sizing.used);
    }
    rope_tables_build(p->rope_cos, p->rope_sin, T, c, T);
    return 0;
}

void lm_plan_free(lm_plan *p) {
    free(p->arena);
    free(p->acts);
    memset(p, 0, sizeof *p);
}

size_t lm_plan_bytes(const lm_plan *p) { return p->arena_bytes; }

// Positions and the first attendable position of every token, from the batch's documents.
static void batch_layout(lm_plan *p, const lm_batch *b) {
    for (int bi = 0; bi < p->B; bi++) {
        int row = bi * p->T, first = 0;
        for (int t = 0; t < p->T; t++) {
            int n = row + t;
            if (b->doc_ids && t > 0 && b->doc_ids[n] != b->doc_ids[n - 1]) first = t;
            p->start[n] = first;
            p->pos[n] = b->positions ? b->positions[n] : t;
        }
    }
}

static int lora_on(const lm_plan *p, lora_target t) { return p->lora && lora_enabled(p->lora, t); }

static int dropout_on(const lm_plan *p) {
    return p->training && p->lora && p->lora->cfg.dropout > 0.0f;
}

static uint64_t dropout_stream(const lm_plan *p, int l, lora_target t) {
    return (p->dropout_counter * (uint64_t)p->m->cfg.n_layers + (uint64_t)l) * LORA_N_TARGETS +
           (uint64_t)t;
}

// y[N,out] = x W^T (+ b) + LoRA(x)
void proj_forward(lm_plan *p, float *y, const float *x, const float *W, const float *bias,
                         int l, lora_target t, int in, int out) {
    linear_forward(y, x, W, bias, p->N, in, out);
    if (!lora_on(p, t)) return;
    const lora_adapter *a = p->lora;
    const float *xd = x;
    if (dropout_on(p)) {
        lora_dropout_apply(p->xd, x, (int64_t)p->N * in, a->cfg.dropout, p->dropout_seed,
                           dropout_stream(p, l, t));
        xd = p->xd;
    }
    lora_forward(y, p->acts[l].lora_u[t], xd, lora_A(a, l, t), lora_B(a, l, t), a->scale, p->N,
                 in, out, a->cfg.r);
}

// dx[N,in] += dy W + LoRA input gradient; LoRA A/B gradients accumulated.
void proj_backward(lm_plan *p, float *dx, const float *dy, const float *x, const float *W,
                          int l, lora_target t, int in, int out) {
    linear_backward(dx, dy, W, p->N, in, out);
    if (!lora_on(p, t)) return;
    const lora_adapter *a = p->lora;
    const int64_t n = (int64_t)p->N * in;
    if (!dropout_on(p)) {
        lora_backward(dx, lora_dA(a, l, t), lora_dB(a, l, t), p->lora_du, dy, x,
                      p->acts[l].lora_u[t], lora_A(a, l, t), lora_B(a, l, t), a->scale, p->N, in,
                      out, a->cfg.r);
        return;
    }
    uint64_t stream = dropout_stream(p, l, t);
    lora_dropout_apply(p->xd, x, n, a->cfg.dropout, p->dropout_seed, stream);
    memset(p->dxd, 0, (size_t)n * sizeof(float));
    lora_backward(p->dxd, lora_dA(a, l, t), lora_dB(a, l, t), p->lora_du, dy, p->xd,
                  p->acts[l].lora_u[t], lora_A(a, l, t), lora_B(a, l, t), a->scale, p->N, in, out,
                  a->cfg.r);
    // The dropout mask is its own transpose: apply it to the gradient of the dropped input.
    lora_dropout_apply(p->dxd, p->dxd, n, a->cfg.dropout, p->dropout_seed, stream);
    cblas_saxpy((int)n, 1.0f, p->dxd, 1, dx, 1);
}

// The fused target's input after dropout (p->xd) or x itself.
static const float *fused_lora_input(lm_plan *p, const float *x, int l, lora_target t, int in) {
    if (!dropout_on(p)) return x;
    lora_dropout_apply(p->xd, x, (int64_t)p->N * in, p->lora->cfg.dropout, p->dropout_seed,
                       dropout_stream(p, l, t));
    return p->xd;
}

// u[N,r] = xd A^T once, then ys[i][N, w[i]] += scale u B_i^T with B_i the rows of B for part i.
void proj_fused_lora_forward(lm_plan *p, float *const *ys, const int *w, int k, const float *x,
                             int l, lora_target t, int in) {
    if (!lora_on(p, t)) return;
    const lora_adapter *a = p->lora;
    const int N = p->N, r = a->cfg.r;
    const float *xd = fused_lora_input(p, x, l, t, in);
    float *u = p->acts[l].lora_u[t];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, r, in, 1.0f, xd, in, lora_A(a, l, t),
                in, 0.0f, u, r);
    const float *B = lora_B(a, l, t);
    for (int i = 0; i < k; B += (int64_t)w[i] * r, i++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, w[i], r, a->scale, u, r, B, r,
                    1.0f, ys[i], w[i]);
}

// du = scale sum_i dys[i] B_i; dB_i += scale dys[i]^T u; dA += du^T xd; dxd += du A.
void proj_fused_lora_backward(lm_plan *p, float *dx, const float *const *dys, const int *w, int k,
                              const float *x, int l, lora_target t, int in) {
    if (!lora_on(p, t)) return;
    const lora_adapter *a = p->lora;
    const int N = p->N, r = a->cfg.r;
    const float *xd = fused_lora_input(p, x, l, t, in);
    const float *u = p->acts[l].lora_u[t];
    const float *B = lora_B(a, l, t);
    float *dB = lora_dB(a, l, t);
    for (int i = 0; i < k; B += (int64_t)w[i] * r, dB += (int64_t)w[i] * r, i++) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, r, w[i], a->scale, dys[i], w[i],
                    B, r, i ? 1.0f : 0.0f, p->lora_du, r);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, w[i], r, N, a->scale, dys[i], w[i],
                    u, r, 1.0f, dB, r);
    }
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, in, N, 1.0f, p->lora_du, r, xd, in,
                1.0f, lora_dA(a, l, t), in);
    if (!dropout_on(p)) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, in, r, 1.0f, p->lora_du, r,
                    lora_A(a, l, t), in, 1.0f, dx, in);
        return;
    }
    // As proj_backward: the gradient of the dropped input goes through the same mask.
    const int64_t n = (int64_t)N * in;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, in, r, 1.0f, p->lora_du, r,
                lora_A(a, l, t), in, 0.0f, p->dxd, in);
    lora_dropout_apply(p->dxd, p->dxd, n, a->cfg.dropout, p->dropout_seed, dropout_stream(p, l, t));
    cblas_saxpy((int)n, 1.0f, p->dxd, 1, dx, 1);
}

static void add_inplace(float *y, const float *x, int64_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

static void layer_forward(lm_plan *p, int l, float *x_next) {
    const model_config *c = &p->m->cfg;
    if (c->arch == MODEL_ARCH_GPT2) {
        gpt2_layer_forward(p, l, x_next);
        return;
    }
    const layer_weights *w = &p->m->layers[l];
    layer_acts *s = &p->acts[l];
    const int N = p->N, C = c->hidden_size, F = c->intermediate_size, D = c->head_dim;
    const int H = c->n_heads, KV = c->n_kv_heads, QD = H * D, KD = KV * D;

    rmsnorm_forward(s->xn1, s->rstd1, s->x, w->attn_norm, N, C, c->rms_norm_eps);
    proj_forward(p, s->q, s->xn1, w->wq, w->bq, l, LORA_Q, C, QD);
    proj_forward(p, s->k, s->xn1, w->wk, w->bk, l, LORA_K, C, KD);
    proj_forward(p, s->v, s->xn1, w->wv, w->bv, l, LORA_V, C, KD);
    proj_fused_lora_forward(p, (float *const[]){s->q, s->k, s->v}, (const int[]){QD, KD, KD}, 3,
                            s->xn1, l, LORA_QKV, C);
    rope_partial_forward(s->q, p->pos, p->rope_cos, p->rope_sin, N, H, D, rope_rotary_dim(c));
    rope_partial_forward(s->k, p->pos, p->rope_cos, p->rope_sin, N, KV, D, rope_rotary_dim(c));
    attention_forward(s->att, s->probs, s->q, s->k, s->v, p->start, p->B, p->T, H, KV, D);
    proj_forward(p, p->tmp, s->att, w->wo, NULL, l, LORA_O, QD, C);
    memcpy(s->xmid, s->x, (size_t)N * C * sizeof(float));
    add_inplace(s->xmid, p->tmp, (int64_t)N * C);

    rmsnorm_forward(s->xn2, s->rstd2, s->xmid, w->mlp_norm, N, C, c->rms_norm_eps);
    proj_forward(p, s->g, s->xn2, w->w_gate, NULL, l, LORA_GATE, C, F);
    proj_forward(p, s->u, s->xn2, w->w_up, NULL, l, LORA_UP, C, F);
    proj_fused_lora_forward(p, (float *const[]){s->g, s->u}, (const int[]){F, F}, 2, s->xn2, l,
                            LORA_GATE_UP, C);
    swiglu_forward(s->h, s->g, s->u, (int64_t)N * F);
    proj_forward(p, p->tmp, s->h, w->w_down, NULL, l, LORA_DOWN, F, C);
    memcpy(x_next, s->xmid, (size_t)N * C * sizeof(float));
    add_inplace(x_next, p->tmp, (int64_t)N * C);
}

// p->dres holds d(loss)/d(layer output) on entry and d(loss)/d(layer input) on return.
static void layer_backward(lm_plan *p, int l) {
    const model_config *c = &p->m->cfg;
    if (c->arch == MODEL_ARCH_GPT2) {
        gpt2_layer_backward(p, l);
        return;
    }
    const layer_weights *w = &p->m->layers[l];
    layer_acts *s = &p->acts[l];
    const int N = p->N, C = c->hidden_size, F = c->intermediate_size, D = c->head_dim;
    const int H = c->n_heads, KV = c->n_kv_heads, QD = H * D, KD = KV * D;
    const size_t fl = sizeof(float);

    memset(p->dh, 0, (size_t)N * F * fl);
    proj_backward(p, p->dh, p->dres, s->h, w->w_down, l, LORA_DOWN, F, C);
    memset(p->dg, 0, (size_t)N * F * fl);
    memset(p->du, 0, (size_t)N * F * fl);
    swiglu_backward(p->dg, p->du, p->dh, s->g, s->u, (int64_t)N * F);
    memset(p->dxn, 0, (size_t)N * C * fl);
    proj_backward(p, p->dxn, p->dg, s->xn2, w->w_gate, l, LORA_GATE, C, F);
    proj_backward(p, p->dxn, p->du, s->xn2, w->w_up, l, LORA_UP, C, F);
    proj_fused_lora_backward(p, p->dxn, (const float *const[]){p->dg, p->du}, (const int[]){F, F},
                             2, s->xn2, l, LORA_GATE_UP, C);
    rmsnorm_backward(p->dres, p->dxn, s->xmid, w->mlp_norm, s->rstd2, N, C);

    memset(p->datt, 0, (size_t)N * QD * fl);
    proj_backward(p, p->datt, p->dres, s->att, w->wo, l, LORA_O, QD, C);
    memset(p->dk, 0, (size_t)N * KD * fl);
    memset(p->dv, 0, (size_t)N * KD * fl);
    attention_backward(p->dq, p->dk, p->dv, p->attn_scratch, p->max_threads, p->datt, s->probs,
                       s->q, s->k, s->v, p->start, p->B, p->T, H, KV, D);
    rope_partial_backward(p->dq, p->pos, p->rope_cos, p->rope_sin, N, H, D, rope_rotary_dim(c));
    rope_partial_backward(p->dk, p->pos, p->rope_cos, p->rope_sin, N, KV, D, rope_rotary_dim(c));
    memset(p->dxn, 0, (size_t)N * C * fl);
    proj_backward(p, p->dxn, p->dq, s->xn1, w->wq, l, LORA_Q, C, QD);
    proj_backward(p, p->dxn, p->dk, s->xn1, w->wk, l, LORA_K, C, KD);
    proj_backward(p, p->dxn, p->dv, s->xn1, w->wv, l, LORA_V, C, KD);
    proj_fused_lora_backward(p, p->dxn, (const float *const[]){p->dq, p->dk, p->dv},
                             (const int[]){QD, KD, KD}, 3, s->xn1, l, LORA_QKV, C);
    rmsnorm_backward(p->dres, p->dxn, s->x, w->attn_norm, s->rstd1, N, C);
}

static void trunk_forward(lm_plan *p, const lm_batch *b) {
    const model_config *c = &p->m->cfg;
    batch_layout(p, b);
    embedding_forward(p->acts[0].x, b->tokens, p->m->embed, p->N, c->hidden_size);
    if (p->m->pos_embed) pos_embedding_add(p->acts[0].x, p->pos, p->m->pos_embed, p->N, c->hidden_size);
    if (c->rope_scaling == ROPE_SCALING_LONGROPE) {
        int32_t max_pos = 0;
        for (int n = 0; n < p->N; n++) max_pos = p->pos[n] > max_pos ? p->pos[n] : max_pos;
        rope_tables_build(p->rope_cos, p->rope_sin, p->T, c, max_pos + 1);
    }
    for (int l = 0; l < c->n_layers; l++)
        layer_forward(p, l, l + 1 < c->n_layers ? p->acts[l + 1].x : p->x_out);
    if (p->m->final_norm_b)
        layernorm_forward(p->xnf, p->rstdf, p->x_out, p->m->final_norm, p->m->final_norm_b, p->N,
                          c->hidden_size, c->rms_norm_eps);
    else
        rmsnorm_forward(p->xnf, p->rstdf, p->x_out, p->m->final_norm, p->N, c->hidden_size,
                        c->rms_norm_eps);
}

double lm_forward(lm_plan *p, const lm_batch *b, int need_grad, float grad_scale,
                  int64_t *n_targets) {
    const model_config *c = &p->m->cfg;
    const int C = c->hidden_size, V = c->vocab_size;
    trunk_forward(p, b);
    double loss = 0.0;
    for (int n0 = 0; n0 < p->N; n0 += p->chunk_rows) {
        int rows = p->N - n0 < p->chunk_rows ? p->N - n0 : p->chunk_rows;
        const float *xr = p->xnf + (int64_t)n0 * C;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, V, C, 1.0f, xr, C, p->m->lm_head,
                    C, 0.0f, p->logits, V);
        loss += crossentropy_forward_backward(need_grad ? p->logits : NULL, p->logits,
                                              b->targets + n0, rows, V, grad_scale, n_targets);
        // dX of the head in fixed blocks of LM_DX_BLOCK_ROWS rows, one single-threaded sgemm
        // each (OpenBLAS runs single-threaded inside a parallel region): one threaded sgemm
        // gave other sums with 1 and 2 threads for K = V = 397 or 400 (not 512), so a run
        // depended on its thread count (tests/train/check_threads.py, random model).
        if (need_grad) {
#pragma omp parallel for schedule(static)
            for (int r0 = 0; r0 < rows; r0 += LM_DX_BLOCK_ROWS) {
                int nr = rows - r0 < LM_DX_BLOCK_ROWS ? rows - r0 : LM_DX_BLOCK_ROWS;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nr, C, V, 1.0f,
                            p->logits + (int64_t)r0 * V, V, p->m->lm_head, C, 0.0f,
                            p->dxnf + (int64_t)(n0 + r0) * C, C);
            }
        }
    }
    return loss;
}

void lm_backward(lm_plan *p) {
    const model_config *c = &p->m->cfg;
    memset(p->dres, 0, (size_t)p->N * c->hidden_size * sizeof(float));
    if (p->m->final_norm_b)
        layernorm_backward(p->dres, p->dxnf, p->x_out, p->m->final_norm, p->rstdf, p->N,
                           c->hidden_size);
    else
        rmsnorm_backward(p->dres, p->dxnf, p->x_out, p->m->final_norm, p->rstdf, p->N,
                         c->hidden_size);
    for (int l = c->n_layers - 1; l >= 0; l--) layer_backward(p, l);
}

void lm_logits(lm_plan *p, const lm_batch *b, float *logits) {
    const model_config *c = &p->m->cfg;
    trunk_forward(p, b);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, p->N, c->vocab_size, c->hidden_size, 1.0f,
                p->xnf, c->hidden_size, p->m->lm_head, c->hidden_size, 0.0f, logits,
                c->vocab_size);
}
