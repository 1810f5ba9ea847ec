// The KV-cache decoder: a forward pass over a few new rows that attends to the cached keys and
// values of the earlier positions. Per-layer math as model/transformer.c's layer_forward.
#include "model/decoder.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/arena.h"
#include "formats/gguf.h"
#include "model/arch.h"
#include "model/attention.h"
#include "model/ops.h"
#include "model/weight_group.h"

enum { HEAD_ROWS = 8, PREFILL_PAD = 16 };  // see head_last and attention_prefill

// Every buffer of the decoder, once: over a sizing carver this adds up the arena's size, over
// the allocation it sets the pointers (common/arena.h). Shapes as in decoder.h.
static void decoder_carve(decoder *d, arena_carver *a) {
    const model_config *c = &d->m->cfg;
    const int64_t R = d->max_rows, T = d->cache.n_ctx, C = c->hidden_size;
    const int64_t F = c->intermediate_size, L = c->n_layers, H = c->n_heads, D = c->head_dim;
    const int64_t QD = H * D, KD = (int64_t)c->n_kv_heads * D;
    const int64_t r = d->lora ? d->lora->cfg.r : 0;
    ARENA_CARVE(a, d->cache.k, L * T * KD);
    ARENA_CARVE(a, d->cache.v, L * T * KD);
    ARENA_CARVE(a, d->x, R * C);
    ARENA_CARVE(a, d->xn, R * C);
    ARENA_CARVE(a, d->tmp, R * C);
    const int64_t RP = (R + PREFILL_PAD - 1) / PREFILL_PAD * PREFILL_PAD;
    ARENA_CARVE(a, d->q, RP * QD);
    ARENA_CARVE(a, d->att, RP * QD);
    ARENA_CARVE(a, d->k, RP * KD);
    ARENA_CARVE(a, d->v, RP * KD);
    ARENA_CARVE(a, d->g, R * F);
    ARENA_CARVE(a, d->u, R * F);
    ARENA_CARVE(a, d->h, R * F);
    ARENA_CARVE(a, d->lora_u, R * r);
    ARENA_CARVE(a, d->scores, H * R * T);
    ARENA_CARVE(a, d->rope_cos, T * D / 2);
    ARENA_CARVE(a, d->rope_sin, T * D / 2);
    const int local_rope = c->rope_local_theta > 0;
    ARENA_CARVE(a, d->rope_cos_local, local_rope ? T * D / 2 : 0);
    ARENA_CARVE(a, d->rope_sin_local, local_rope ? T * D / 2 : 0);
    ARENA_CARVE(a, d->rstd_heads, c->qk_norm ? R * H : 0);
    ARENA_CARVE(a, d->tokens, c->rope_scaling == ROPE_SCALING_LONGROPE ? T : 0);
    ARENA_CARVE(a, d->lse, H * RP);
    ARENA_CARVE(a, d->attn_scratch,
                attention_scratch_floats(1, (int)RP, (int)H, (int)D, d->threads));
    ARENA_CARVE(a, d->start, RP);
    ARENA_CARVE(a, d->head_rows, R >= HEAD_ROWS ? HEAD_ROWS * (int64_t)c->vocab_size : 0);
}

int decoder_init(decoder *d, const model *m, const lora_adapter *lora, int n_ctx) {
    return decoder_init_rows(d, m, lora, n_ctx, DECODER_MAX_ROWS);
}

int decoder_init_rows(decoder *d, const model *m, const lora_adapter *lora, int n_ctx,
                      int max_rows) {
    memset(d, 0, sizeof *d);
    const model_config *c = &m->cfg;
    if (max_rows < 1 || max_rows > DECODER_ROWS_LIMIT)
        return err_set("decoder: %d rows per call is outside [1, %d]", max_rows,
                       DECODER_ROWS_LIMIT);
    if (n_ctx < 1 || n_ctx > c->max_position_embeddings)
        return err_set("decoder: context of %d positions is outside [1, %d] "
                       "(max_position_embeddings)",
                       n_ctx, c->max_position_embeddings);
    if (lora && lora->n_layers != c->n_layers)
        return err_set("decoder: the adapter has %d layers, the model %d", lora->n_layers,
                       c->n_layers);
    d->m = m;
    d->lora = lora;
    d->max_rows = max_rows;
    d->threads = omp_get_max_threads();
    d->cache.n_ctx = n_ctx;
    arena_carver sizing = {0};
    decoder_carve(d, &sizing);
    d->arena_bytes = sizing.used;
    d->arena = arena_alloc(&sizing);
    if (!d->arena) {
        memset(d, 0, sizeof *d);
        return err_set("decoder: out of memory for a %d-position KV cache (%.1f MB)", n_ctx,
                       (double)sizing.used / 1e6);
    }
    arena_carver carving = {.base = d->arena};
    decoder_carve(d, &carving);
    // Both passes run the same list, so this only fails if the list came to depend on state
    // that changed between them: refuse rather than hand out slices past the allocation.
    if (carving.used != sizing.used) {
        decoder_free(d);
        return err_set("decoder: internal error: %zu bytes carved from a %zu-byte arena",
                       carving.used, sizing.used);
    }
    rope_tables_build(d->rope_cos, d->rope_sin, n_ctx, c, 0);
    if (c->rope_local_theta > 0)
        arch_rope_local_init(d->rope_cos_local, d->rope_sin_local, n_ctx, c->head_dim, c);
    return 0;
}

void decoder_free(decoder *d) {
    free(d->arena);
    memset(d, 0, sizeof *d);
}

void decoder_reset(decoder *d) {
    d->cache.n_past = 0;
    d->n_positions = 0;
    if (d->rope_long) {
        rope_tables_build(d->rope_cos, d->rope_sin, d->cache.n_ctx, &d->m->cfg, 0);
        d->rope_long = 0;
    }
}

// A decode step is a few hundred small operations. An OpenMP region costs a barrier, and on a
// busy machine a barrier waits for a descheduled thread, so a one-row step runs single-threaded
// (the OpenMP ICV also governs the OpenMP build of OpenBLAS) except for the products with at
// least this many weights, which are worth splitting across threads.
#define PARALLEL_MIN_WEIGHTS (1 << 18)

// y[n,out] = x[n,in] W^T (+ bias); one row goes through gemv, the shape of a decode step.
// Stored types other than F32 take the block kernels (n <= 8) or dequantized panels.
static void matmul_rows(const decoder *d, float *y, const float *x, const weight_mat *W,
                        const float *bias, int n, int in, int out) {
    const int wide = n == 1 && (int64_t)in * out >= PARALLEL_MIN_WEIGHTS && d->threads > 1;
    if (wide) omp_set_num_threads(d->threads);
    float beta = 0.0f;
    if (bias) {
        for (int i = 0; i < n; i++) memcpy(y + (int64_t)i * out, bias, (size_t)out * sizeof(float));
        beta = 1.0f;
    }
    if (W->type != GGML_TYPE_F32 && n <= WEIGHT_GEMV_MAX_ROWS)
        (d->int8_products ? weight_gemv_int8 : weight_gemv)(y, x, W, bias, n);
    else if (W->type != GGML_TYPE_F32)
        weight_matmul_forward(y, x, W, bias, n);
    else if (n == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, out, in, 1.0f, W->data, in, x, 1, beta, y, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.0f, x, in, W->data,
                    in, beta, y, out);
    if (wide) omp_set_num_threads(1);
}

// y += scale * (x A^T) B^T when the adapter targets this projection.
static void lora_add(decoder *d, float *y, const float *x, int l, lora_target t, int n, int in,
                     int out) {
    const lora_adapter *a = d->lora;
    if (!a || !lora_enabled(a, t)) return;
    const int r = a->cfg.r;
    const float *A = lora_A(a, l, t), *B = lora_B(a, l, t);
    if (n == 1) {
        cblas_sgemv(CblasRowMajor, CblasNoTrans, r, in, 1.0f, A, in, x, 1, 0.0f, d->lora_u, 1);
        cblas_sgemv(CblasRowMajor, CblasNoTrans, out, r, a->scale, B, r, d->lora_u, 1, 1.0f, y, 1);
    } else {
        lora_forward(y, d->lora_u, x, A, B, a->scale, n, in, out, r);
    }
}

// y = x W^T (+ b) + scale * (x A^T) B^T when the adapter targets this projection.
static void proj(decoder *d, float *y, const float *x, const weight_mat *W, const float *bias,
                 int l, lora_target t, int n, int in, int out) {
    matmul_rows(d, y, x, W, bias, n, in, out);
    lora_add(d, y, x, l, t, n, in, out);
}

// The k projections of one input (q/k/v, gate/up), each with its LoRA target t[i]. When every
// matrix is stored quantized and the rows are few, their products are one weight_group_gemv:
// one parallel region over the output rows of all k and the input rounded to int8 once,
// instead of a region and a rounding per product (a TinyLlama step: 89 regions instead of
// 155). Every output element is the one matmul_rows gives (model/weight_group.h).
static void proj_group(decoder *d, const weight_group_part *p, const lora_target *t, int k,
                       const float *x, int l, int n, int in) {
    int grouped = n <= WEIGHT_GEMV_MAX_ROWS;
    int64_t weights = 0;
    for (int i = 0; i < k; i++) {
        grouped &= p[i].W->type != GGML_TYPE_F32;
        weights += p[i].W->rows * p[i].W->cols;
    }
    if (grouped)
        weight_group_gemv(p, k, x, n, d->int8_products,
                          weights >= PARALLEL_MIN_WEIGHTS ? d->threads : 1);
    for (int i = 0; i < k; i++) {
        const int out = (int)p[i].W->rows;
        if (!grouped) matmul_rows(d, p[i].y, x, p[i].W, p[i].b, n, in, out);
        lora_add(d, p[i].y, x, l, t[i], n, in, out);
    }
}

// The LoRA branch of a fused target split over k outputs ys[i] of widths w[i] (B's rows in
// the same order), as proj_fused_lora_forward of model/proj.c.
static void proj_fused_lora(decoder *d, float *const *ys, const int *w, int k, const float *x,
                            int l, lora_target t, int n, int in) {
    const lora_adapter *a = d->lora;
    if (!a || !lora_enabled(a, t)) return;
    const int r = a->cfg.r;
    const float *B = lora_B(a, l, t);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, r, in, 1.0f, x, in, lora_A(a, l, t),
                in, 0.0f, d->lora_u, r);
    for (int i = 0; i < k; B += (int64_t)w[i] * r, i++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, w[i], r, a->scale, d->lora_u, r, B,
                    r, 1.0f, ys[i], w[i]);
}

// RMSNorm, or gpt2's LayerNorm when the norm has a bias.
static void norm_rows(const model_config *c, float *y, float *rstd, const float *x, const float *w,
                      const float *b, int n) {
    if (b)
        layernorm_forward(y, rstd, x, w, b, n, c->hidden_size, c->rms_norm_eps);
    else
        rmsnorm_forward(y, rstd, x, w, n, c->hidden_size, c->rms_norm_eps);
}

static void add_rows(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

// att[n, H*D] for the n new rows (cache slots p0..p0+n-1) of layer l. Row i attends to the
// slots before p0 and to the new rows first[i]..i: first[i] = 0 everywhere is causal attention,
// a larger first[i] starts a branch that does not see the rows of the branches before it.
// With a sliding window W > 0, row i also drops the keys more than W - 1 positions before it
// (positions count from the row's rotary position pos[i], as in the training passes).
static void attention_cached(decoder *d, int l, int n, int p0, const int *first,
                             const int32_t *pos, int window) {
    const model_config *c = &d->m->cfg;
    const int H = c->n_heads, KV = c->n_kv_heads, D = c->head_dim, QD = H * D, KD = KV * D;
    const int group = H / KV, T = p0 + n, n_ctx = d->cache.n_ctx;
    const float scale = 1.0f / sqrtf((float)D);
    const float *kc = d->cache.k + (int64_t)l * n_ctx * KD;
    const float *vc = d->cache.v + (int64_t)l * n_ctx * KD;
#pragma omp parallel for schedule(static) num_threads(n > 1 || T >= 256 ? d->threads : 1)
    for (int h = 0; h < H; h++) {
        const int g = h / group;
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
}

// att[n, H*D] for the n rows of a causal prefill from an empty cache (positions 0..n-1, whose
// q, k and v are the chunk's own): model/attention.c's tiles, as lm_plan's forward runs them.
// Key tiles above the diagonal (or before a sliding window) are skipped, not computed and
// masked. The rows are padded with zeros to a multiple of PREFILL_PAD, the padded length of
// eval's full forward pass (eval/mcq_score.c): OpenBLAS picks its kernels by shape, and a last
// tile of other height sums the same products in another order. Padded keys are masked for
// every real row, so they add exact zeros.
static void attention_prefill(decoder *d, int n, int window) {
    const model_config *c = &d->m->cfg;
    const int H = c->n_heads, KV = c->n_kv_heads, D = c->head_dim;
    const int T = (n + PREFILL_PAD - 1) / PREFILL_PAD * PREFILL_PAD;
    memset(d->q + (int64_t)n * H * D, 0, (size_t)(T - n) * H * D * sizeof(float));
    memset(d->k + (int64_t)n * KV * D, 0, (size_t)(T - n) * KV * D * sizeof(float));
    memset(d->v + (int64_t)n * KV * D, 0, (size_t)(T - n) * KV * D * sizeof(float));
    for (int i = 0; i < T; i++) d->start[i] = window > 0 && i - window + 1 > 0 ? i - window + 1 : 0;
    attention_forward(d->att, d->lse, d->attn_scratch, n > 1 ? d->threads : 1, d->q, d->k, d->v,
                      d->start, 1, T, H, KV, D);
}

// One chunk of n <= max_rows rows in cache slots n_past..n_past+n-1, row i at rotary
// position n_past + i - first[i] (first as in attention_cached). The final-norm output of the
// rows is left in d->xn; the caller advances n_past.
static void forward_chunk(decoder *d, const int32_t *tokens, int n, const int *first) {
    const model_config *c = &d->m->cfg;
    const int C = c->hidden_size, F = c->intermediate_size, D = c->head_dim;
    const int H = c->n_heads, KV = c->n_kv_heads, QD = H * D, KD = KV * D;
    const int p0 = d->cache.n_past, n_ctx = d->cache.n_ctx;
    int32_t pos[DECODER_ROWS_LIMIT];
    float rstd[DECODER_ROWS_LIMIT];
    int prefill = p0 == 0;
    for (int i = 0; i < n; i++) {
        pos[i] = p0 + i - first[i];
        prefill &= first[i] == 0;
    }
    if (c->rope_scaling == ROPE_SCALING_LONGROPE)
        memcpy(d->tokens + p0, tokens, (size_t)n * sizeof(int32_t));
    const int gpt2 = c->arch == MODEL_ARCH_GPT2, R = rope_rotary_dim(c);
    embedding_forward(d->x, tokens, &d->m->embed, n);
    if (c->embed_scale > 0) scale_inplace(d->x, (int64_t)n * C, c->embed_scale);
    if (d->m->pos_embed) pos_embedding_add(d->x, pos, d->m->pos_embed, n, C);
    for (int l = 0; l < c->n_layers; l++) {
        const layer_weights *w = &d->m->layers[l];
        const int local = arch_layer_local_rope(c, l);
        const float *rc = local ? d->rope_cos_local : d->rope_cos;
        const float *rs = local ? d->rope_sin_local : d->rope_sin;
        norm_rows(c, d->xn, rstd, d->x, w->attn_norm, w->attn_norm_b, n);
        proj_group(d,
                   (const weight_group_part[]){
                       {d->q, &w->wq, w->bq}, {d->k, &w->wk, w->bk}, {d->v, &w->wv, w->bv}},
                   (const lora_target[]){LORA_Q, LORA_K, LORA_V}, 3, d->xn, l, n, C);
        proj_fused_lora(d, (float *const[]){d->q, d->k, d->v}, (const int[]){QD, KD, KD}, 3, d->xn,
                        l, LORA_QKV, n, C);
        if (c->qk_norm) {  // in place: each output element depends on its own input and rstd
            rmsnorm_forward(d->q, d->rstd_heads, d->q, w->q_norm, n * H, D, c->rms_norm_eps);
            rmsnorm_forward(d->k, d->rstd_heads, d->k, w->k_norm, n * KV, D, c->rms_norm_eps);
        }
        if (!gpt2) {
            rope_partial_forward(d->q, pos, rc, rs, n, H, D, R);
            rope_partial_forward(d->k, pos, rc, rs, n, KV, D, R);
        } else if (c->attn_scale_inverse_layer) {
            cblas_sscal(n * QD, 1.0f / (float)(l + 1), d->q, 1);
        }
        if (c->q_scale > 0) scale_inplace(d->q, (int64_t)n * QD, c->q_scale);
        const int64_t at = ((int64_t)l * n_ctx + p0) * KD;
        memcpy(d->cache.k + at, d->k, (size_t)n * KD * sizeof(float));
        memcpy(d->cache.v + at, d->v, (size_t)n * KD * sizeof(float));
        const int window = arch_layer_sliding(c, l) ? c->sliding_window : 0;
        if (prefill)
            attention_prefill(d, n, window);
        else
            attention_cached(d, l, n, p0, first, pos, window);
        proj(d, d->tmp, d->att, &w->wo, w->bo, l, LORA_O, n, QD, C);
        if (c->post_norms)
            rmsnorm_forward(d->tmp, rstd, d->tmp, w->post_attn_norm, n, C, c->rms_norm_eps);
        add_rows(d->x, d->tmp, (int64_t)n * C);

        norm_rows(c, d->xn, rstd, d->x, w->mlp_norm, w->mlp_norm_b, n);
        if (gpt2) {
            proj(d, d->u, d->xn, &w->w_up, w->b_up, l, LORA_UP, n, C, F);
            gelu_tanh_forward(d->h, d->u, (int64_t)n * F);
        } else {
            proj_group(d,
                       (const weight_group_part[]){{d->g, &w->w_gate, NULL},
                                                   {d->u, &w->w_up, NULL}},
                       (const lora_target[]){LORA_GATE, LORA_UP}, 2, d->xn, l, n, C);
            proj_fused_lora(d, (float *const[]){d->g, d->u}, (const int[]){F, F}, 2, d->xn, l,
                            LORA_GATE_UP, n, C);
            if (c->gelu_mlp)
                geglu_forward(d->h, d->g, d->u, (int64_t)n * F);
            else
                swiglu_forward(d->h, d->g, d->u, (int64_t)n * F);
        }
        proj(d, d->tmp, d->h, &w->w_down, w->b_down, l, LORA_DOWN, n, F, C);
        if (c->post_norms)
            rmsnorm_forward(d->tmp, rstd, d->tmp, w->post_ffn_norm, n, C, c->rms_norm_eps);
        add_rows(d->x, d->tmp, (int64_t)n * C);
    }
    norm_rows(c, d->xn, rstd, d->x, d->m->final_norm, d->m->final_norm_b, n);
    d->n_positions += n;
}

// logits[n, V] of n final-norm rows, soft-capped when the model says so (gemma3).
static void head_logits(const decoder *d, float *logits, const float *xn, int n) {
    const model_config *c = &d->m->cfg;
    matmul_rows(d, logits, xn, &d->m->lm_head, NULL, n, c->hidden_size, c->vocab_size);
    if (c->final_softcap > 0)
        softcap_forward(logits, (int64_t)n * c->vocab_size, c->final_softcap);
}

// longrope: a call reaching past the pretraining length runs with the long factors; a cache
// computed with the short ones is then recomputed from its tokens, as transformers' Phi-3
// generation drops its cache at that point.
static void rope_prepare(decoder *d, int seq_len) {
    const model_config *c = &d->m->cfg;
    if (c->rope_scaling != ROPE_SCALING_LONGROPE || d->rope_long ||
        seq_len <= c->rope_original_max_position)
        return;
    rope_tables_build(d->rope_cos, d->rope_sin, d->cache.n_ctx, c, seq_len);
    d->rope_long = 1;
    static const int causal[DECODER_ROWS_LIMIT];
    const int n_past = d->cache.n_past;
    d->cache.n_past = 0;
    for (int i0 = 0; i0 < n_past; i0 += d->max_rows) {
        const int rows = n_past - i0 < d->max_rows ? n_past - i0 : d->max_rows;
        int32_t chunk[DECODER_ROWS_LIMIT];
        memcpy(chunk, d->tokens + i0, (size_t)rows * sizeof(int32_t));
        forward_chunk(d, chunk, rows, causal);
        d->cache.n_past += rows;
    }
}

// The last row's logits of a chunk come from a head product over its last HEAD_ROWS rows (the
// others' logits are dropped), through sgemm as in lm_plan, not gemv: OpenBLAS sums each row
// of a product of 8 or more rows in the order of lm_plan's product over every position, and
// products of fewer rows (and gemv) in another, a few roundings apart (measured on OpenBLAS 0.3.21). With the prefill's attention
// tiles, a prompt's logits are then lm_plan's bit for bit, which keeps multiple-choice
// scoring on the decoder (eval/mcq_score_kv.c) within 1e-5 of the full forward pass.
static void head_last(decoder *d, float *logits, int rows) {
    const int C = d->m->cfg.hidden_size, V = d->m->cfg.vocab_size;
    if (rows < HEAD_ROWS) {
        head_logits(d, logits, d->xn + (int64_t)(rows - 1) * C, 1);
        return;
    }
    weight_matmul_forward(d->head_rows, d->xn + (int64_t)(rows - HEAD_ROWS) * C, &d->m->lm_head,
                          NULL, HEAD_ROWS);
    if (d->m->cfg.final_softcap > 0)
        softcap_forward(d->head_rows, (int64_t)HEAD_ROWS * V, d->m->cfg.final_softcap);
    memcpy(logits, d->head_rows + (int64_t)(HEAD_ROWS - 1) * V, (size_t)V * sizeof(float));
}

static int check_tokens(const decoder *d, const int32_t *tokens, int n) {
    const int V = d->m->cfg.vocab_size;
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= V)
            return err_set("decoder: token id %d is outside the model's vocabulary (%d)",
                           tokens[i], V);
    return 0;
}

int decoder_forward(decoder *d, const int32_t *tokens, int n, float *logits, int all_logits) {
    const int V = d->m->cfg.vocab_size;
    if (n <= 0) return err_set("decoder: no tokens to run");
    if (n > d->cache.n_ctx - d->cache.n_past)
        return err_set("decoder: %d more tokens do not fit the context (%d of %d positions used)",
                       n, d->cache.n_past, d->cache.n_ctx);
    if (check_tokens(d, tokens, n)) return -1;
    static const int causal[DECODER_ROWS_LIMIT];
    const int saved_threads = omp_get_max_threads();
    omp_set_num_threads(n == 1 ? 1 : d->threads);
    rope_prepare(d, d->cache.n_past + n);
    for (int i0 = 0; i0 < n; i0 += d->max_rows) {
        const int rows = n - i0 < d->max_rows ? n - i0 : d->max_rows;
        forward_chunk(d, tokens + i0, rows, causal);
        d->cache.n_past += rows;
        if (!logits) continue;
        if (all_logits)
            head_logits(d, logits + (int64_t)i0 * V, d->xn, rows);
        else if (i0 + rows == n)
            head_last(d, logits, rows);
    }
    omp_set_num_threads(saved_threads);
    return 0;
}

int decoder_forward_branches(decoder *d, const int32_t *tokens, const int *branch_start,
                             int n_branches, float *logits) {
    if (n_branches <= 0 || branch_start[0] != 0)
        return err_set("decoder: branches must start at row 0");
    const int n = branch_start[n_branches];
    if (n <= 0 || n > d->max_rows)
        return err_set("decoder: %d branch rows, outside [1, %d]", n, d->max_rows);
    if (n > d->cache.n_ctx - d->cache.n_past)
        return err_set("decoder: %d more tokens do not fit the context (%d of %d positions used)",
                       n, d->cache.n_past, d->cache.n_ctx);
    if (check_tokens(d, tokens, n)) return -1;
    int first[DECODER_ROWS_LIMIT];
    for (int b = 0; b < n_branches; b++) {
        if (branch_start[b + 1] < branch_start[b] || branch_start[b] < 0)
            return err_set("decoder: branch %d has a negative length", b);
        for (int i = branch_start[b]; i < branch_start[b + 1]; i++) first[i] = branch_start[b];
    }
    const int saved_threads = omp_get_max_threads();
    omp_set_num_threads(n == 1 ? 1 : d->threads);
    int longest = 0;
    for (int b = 0; b < n_branches; b++)
        if (branch_start[b + 1] - branch_start[b] > longest)
            longest = branch_start[b + 1] - branch_start[b];
    rope_prepare(d, d->cache.n_past + longest);
    forward_chunk(d, tokens, n, first);
    head_logits(d, logits, d->xn, n);
    omp_set_num_threads(saved_threads);
    return 0;
}

int decoder_rewind(decoder *d, int n_past) {
    if (n_past < 0 || n_past > d->cache.n_past)
        return err_set("decoder: cannot rewind to %d of %d cached positions", n_past,
                       d->cache.n_past);
    d->cache.n_past = n_past;
    return 0;
}
