#include "model/transformer.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "model/attention.h"
#include "model/ops.h"

// Rows of logits materialised at once: the [N, V] logits of a whole batch are never stored
// during training; each chunk is turned into its gradient and consumed immediately. Large
// chunks matter: every chunk re-packs the whole lm_head inside sgemm (twice).
#define LOGITS_CHUNK_FLOATS (1 << 25)

static int imax(int a, int b) { return a > b ? a : b; }

int lm_plan_init(lm_plan *p, const model *m, const lora_adapter *lora, int B, int T) {
    memset(p, 0, sizeof *p);
    const model_config *c = &m->cfg;
    if (B <= 0 || T <= 0) return err_set("plan: batch %d x seq_len %d must be positive", B, T);
    p->m = m;
    p->lora = lora;
    p->B = B;
    p->T = T;
    p->N = B * T;
    p->max_threads = omp_get_max_threads();
    const int64_t N = p->N, C = c->hidden_size, F = c->intermediate_size, V = c->vocab_size;
    const int64_t QD = (int64_t)c->n_heads * c->head_dim, KD = (int64_t)c->n_kv_heads * c->head_dim;
    const int64_t H = c->n_heads, L = c->n_layers, D = c->head_dim;
    const int r = lora ? lora->cfg.r : 0;
    int n_lora = 0;
    for (int t = 0; t < LORA_N_TARGETS; t++) n_lora += lora && lora_enabled(lora, t);
    const int64_t max_in = imax(imax((int)C, (int)F), (int)QD);
    const int dropout = lora && lora->cfg.dropout > 0.0f;
    p->chunk_rows = (int)(LOGITS_CHUNK_FLOATS / V);
    if (p->chunk_rows < 1) p->chunk_rows = 1;
    if (p->chunk_rows > p->N) p->chunk_rows = p->N;

    int64_t per_layer = 6 * N * C + 2 * N + 2 * N * QD + 2 * N * KD + (int64_t)B * H * T * T +
                        3 * N * F + (int64_t)n_lora * N * r;
    int64_t total = L * per_layer + 4 * N * C + N                      // x_out, xnf, rstdf, dxnf
                    + 3 * N * C + 2 * N * QD + 2 * N * KD + 3 * N * F  // backward scratch
                    + attention_scratch_floats(T) * p->max_threads + N * r +
                    (dropout ? 2 * N * max_in : 0) + (int64_t)p->chunk_rows * V + T * D;
    p->arena = malloc((size_t)total * sizeof(float));
    p->acts = calloc((size_t)L, sizeof(layer_acts));
    int32_t *ints = malloc((size_t)N * 2 * sizeof(int32_t));
    if (!p->arena || !p->acts || !ints) {
        free(ints);
        lm_plan_free(p);
        return err_set("plan: out of memory for activations of batch %d x seq_len %d (%.1f GB)",
                       B, T, (double)total * 4 / 1e9);
    }
    p->arena_floats = (size_t)total;
    p->pos = ints;
    p->start = ints + N;
    float *a = p->arena;
#define TAKE(ptr, n) ((ptr) = a, a += (n))
    for (int l = 0; l < L; l++) {
        layer_acts *s = &p->acts[l];
        TAKE(s->x, N * C);
        TAKE(s->xn1, N * C);
        TAKE(s->rstd1, N);
        TAKE(s->q, N * QD);
        TAKE(s->k, N * KD);
        TAKE(s->v, N * KD);
        TAKE(s->probs, (int64_t)B * H * T * T);
        TAKE(s->att, N * QD);
        TAKE(s->xmid, N * C);
        TAKE(s->xn2, N * C);
        TAKE(s->rstd2, N);
        TAKE(s->g, N * F);
        TAKE(s->u, N * F);
        TAKE(s->h, N * F);
        for (int t = 0; t < LORA_N_TARGETS; t++)
            if (lora && lora_enabled(lora, t)) TAKE(s->lora_u[t], N * r);
    }
    TAKE(p->x_out, N * C);
    TAKE(p->xnf, N * C);
    TAKE(p->rstdf, N);
    TAKE(p->dxnf, N * C);
    TAKE(p->dres, N * C);
    TAKE(p->dxn, N * C);
    TAKE(p->tmp, N * C);
    TAKE(p->dq, N * QD);
    TAKE(p->datt, N * QD);
    TAKE(p->dk, N * KD);
    TAKE(p->dv, N * KD);
    TAKE(p->dg, N * F);
    TAKE(p->du, N * F);
    TAKE(p->dh, N * F);
    TAKE(p->attn_scratch, attention_scratch_floats(T) * p->max_threads);
    TAKE(p->lora_du, N * r);
    if (dropout) {
        TAKE(p->xd, N * max_in);
        TAKE(p->dxd, N * max_in);
    }
    TAKE(p->logits, (int64_t)p->chunk_rows * V);
    TAKE(p->rope_cos, T * D / 2);
    TAKE(p->rope_sin, T * D / 2);
#undef TAKE
    rope_tables_init(p->rope_cos, p->rope_sin, T, (int)D, c);
    return 0;
}

void lm_plan_free(lm_plan *p) {
    free(p->arena);
    free(p->acts);
    free(p->pos);
    memset(p, 0, sizeof *p);
}

size_t lm_plan_bytes(const lm_plan *p) { return p->arena_floats * sizeof(float); }

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
static void proj_forward(lm_plan *p, float *y, const float *x, const float *W, const float *bias,
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
static void proj_backward(lm_plan *p, float *dx, const float *dy, const float *x, const float *W,
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

static void add_inplace(float *y, const float *x, int64_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

static void layer_forward(lm_plan *p, int l, float *x_next) {
    const model_config *c = &p->m->cfg;
    const layer_weights *w = &p->m->layers[l];
    layer_acts *s = &p->acts[l];
    const int N = p->N, C = c->hidden_size, F = c->intermediate_size, D = c->head_dim;
    const int H = c->n_heads, KV = c->n_kv_heads, QD = H * D, KD = KV * D;

    rmsnorm_forward(s->xn1, s->rstd1, s->x, w->attn_norm, N, C, c->rms_norm_eps);
    proj_forward(p, s->q, s->xn1, w->wq, w->bq, l, LORA_Q, C, QD);
    proj_forward(p, s->k, s->xn1, w->wk, w->bk, l, LORA_K, C, KD);
    proj_forward(p, s->v, s->xn1, w->wv, w->bv, l, LORA_V, C, KD);
    rope_forward(s->q, p->pos, p->rope_cos, p->rope_sin, N, H, D);
    rope_forward(s->k, p->pos, p->rope_cos, p->rope_sin, N, KV, D);
    attention_forward(s->att, s->probs, s->q, s->k, s->v, p->start, p->B, p->T, H, KV, D);
    proj_forward(p, p->tmp, s->att, w->wo, NULL, l, LORA_O, QD, C);
    memcpy(s->xmid, s->x, (size_t)N * C * sizeof(float));
    add_inplace(s->xmid, p->tmp, (int64_t)N * C);

    rmsnorm_forward(s->xn2, s->rstd2, s->xmid, w->mlp_norm, N, C, c->rms_norm_eps);
    proj_forward(p, s->g, s->xn2, w->w_gate, NULL, l, LORA_GATE, C, F);
    proj_forward(p, s->u, s->xn2, w->w_up, NULL, l, LORA_UP, C, F);
    swiglu_forward(s->h, s->g, s->u, (int64_t)N * F);
    proj_forward(p, p->tmp, s->h, w->w_down, NULL, l, LORA_DOWN, F, C);
    memcpy(x_next, s->xmid, (size_t)N * C * sizeof(float));
    add_inplace(x_next, p->tmp, (int64_t)N * C);
}

// p->dres holds d(loss)/d(layer output) on entry and d(loss)/d(layer input) on return.
static void layer_backward(lm_plan *p, int l) {
    const model_config *c = &p->m->cfg;
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
    rmsnorm_backward(p->dres, p->dxn, s->xmid, w->mlp_norm, s->rstd2, N, C);

    memset(p->datt, 0, (size_t)N * QD * fl);
    proj_backward(p, p->datt, p->dres, s->att, w->wo, l, LORA_O, QD, C);
    memset(p->dk, 0, (size_t)N * KD * fl);
    memset(p->dv, 0, (size_t)N * KD * fl);
    attention_backward(p->dq, p->dk, p->dv, p->attn_scratch, p->max_threads, p->datt, s->probs,
                       s->q, s->k, s->v, p->start, p->B, p->T, H, KV, D);
    rope_backward(p->dq, p->pos, p->rope_cos, p->rope_sin, N, H, D);
    rope_backward(p->dk, p->pos, p->rope_cos, p->rope_sin, N, KV, D);
    memset(p->dxn, 0, (size_t)N * C * fl);
    proj_backward(p, p->dxn, p->dq, s->xn1, w->wq, l, LORA_Q, C, QD);
    proj_backward(p, p->dxn, p->dk, s->xn1, w->wk, l, LORA_K, C, KD);
    proj_backward(p, p->dxn, p->dv, s->xn1, w->wv, l, LORA_V, C, KD);
    rmsnorm_backward(p->dres, p->dxn, s->x, w->attn_norm, s->rstd1, N, C);
}

static void trunk_forward(lm_plan *p, const lm_batch *b) {
    const model_config *c = &p->m->cfg;
    batch_layout(p, b);
    embedding_forward(p->acts[0].x, b->tokens, p->m->embed, p->N, c->hidden_size);
    for (int l = 0; l < c->n_layers; l++)
        layer_forward(p, l, l + 1 < c->n_layers ? p->acts[l + 1].x : p->x_out);
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
        if (need_grad)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, C, V, 1.0f, p->logits, V,
                        p->m->lm_head, C, 0.0f, p->dxnf + (int64_t)n0 * C, C);
    }
    return loss;
}

void lm_backward(lm_plan *p) {
    const model_config *c = &p->m->cfg;
    memset(p->dres, 0, (size_t)p->N * c->hidden_size * sizeof(float));
    rmsnorm_backward(p->dres, p->dxnf, p->x_out, p->m->final_norm, p->rstdf, p->N, c->hidden_size);
    for (int l = c->n_layers - 1; l >= 0; l--) layer_backward(p, l);
}

void lm_logits(lm_plan *p, const lm_batch *b, float *logits) {
    const model_config *c = &p->m->cfg;
    trunk_forward(p, b);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, p->N, c->vocab_size, c->hidden_size, 1.0f,
                p->xnf, c->hidden_size, p->m->lm_head, c->hidden_size, 0.0f, logits,
                c->vocab_size);
}
