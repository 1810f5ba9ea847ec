#include "model/transformer.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/arena.h"
#include "formats/gguf.h"
#include "model/arch.h"
#include "model/attention.h"
#include "model/ops.h"

// The head's input gradient runs in blocks of at most LM_DX_BLOCK_ROWS rows, and in at least
// two blocks once a chunk has 2 * LM_DX_MIN_ROWS rows (so two threads share it). Each block's
// sgemm packs the whole [V, C] head again (113 MB on SmolLM2), so blocks are as large as that
// allows: 128-row blocks packed it 9 times per 4 x 256 step, these 4.
enum { LM_DX_BLOCK_ROWS = 256, LM_DX_MIN_ROWS = 32 };

// Every buffer of the plan, once: over a sizing carver this adds up the arena's size, over
// the allocation it sets the pointers (common/arena.h). Shapes as in transformer.h.
static void plan_carve(lm_plan *p, arena_carver *a) {
    const model_config *c = &p->m->cfg;
    const lora_adapter *lora = p->lora;
    const int64_t B = p->B, T = p->T, N = p->N, C = c->hidden_size, F = c->intermediate_size;
    const int64_t H = c->n_heads, D = c->head_dim, QD = H * D, KD = (int64_t)c->n_kv_heads * D;
    const int64_t r = lora ? lora->cfg.r : 0;
    const int64_t G = c->arch == MODEL_ARCH_GPT2 ? 0 : F;  // gate width: gpt2's MLP has none
    int64_t max_in = 0;  // widest input of an enabled LoRA target
    for (int t = 0; t < LORA_N_TARGETS; t++)
        if (lora && lora_enabled(lora, t) && lora->slots[t].in > max_in) max_in = lora->slots[t].in;
    // Targets of the larger group that fuses its A products (model/proj.c, group_fused): q/k/v
    // or gate/up, without LoRA dropout.
    int64_t n_qkv = 0, n_gu = 0;
    for (int t = LORA_Q; t <= LORA_V; t++) n_qkv += lora && lora_enabled(lora, t);
    for (int t = LORA_GATE; t <= LORA_UP; t++) n_gu += lora && lora_enabled(lora, t);
    const int64_t group = lora && lora->cfg.dropout == 0.0f && (n_qkv > 1 || n_gu > 1)
                              ? (n_qkv > n_gu ? n_qkv : n_gu)
                              : 1;
    // With recompute, layer 0's set is the one every layer shares.
    const int n_sets = p->recompute ? 1 : c->n_layers;
    for (int l = 0; l < c->n_layers; l++) {
        layer_acts *s = &p->acts[l];
        ARENA_CARVE(a, s->x, N * C);
        if (l >= n_sets) continue;
        ARENA_CARVE(a, s->rstd1, N);
        ARENA_CARVE(a, s->q, N * QD);
        ARENA_CARVE(a, s->k, N * KD);
        ARENA_CARVE(a, s->v, N * KD);
        ARENA_CARVE(a, s->lse, B * H * T);
        ARENA_CARVE(a, s->att, N * QD);
        ARENA_CARVE(a, s->xmid, N * C);
        ARENA_CARVE(a, s->rstd2, N);
        ARENA_CARVE(a, s->g, N * G);
        ARENA_CARVE(a, s->u, N * F);
        for (int t = 0; t < LORA_N_TARGETS; t++)
            if (lora && lora_enabled(lora, t)) ARENA_CARVE(a, s->lora_u[t], N * r);
        ARENA_CARVE(a, s->q_raw, c->qk_norm ? N * QD : 0);
        ARENA_CARVE(a, s->k_raw, c->qk_norm ? N * KD : 0);
        ARENA_CARVE(a, s->rstd_q, c->qk_norm ? N * H : 0);
        ARENA_CARVE(a, s->rstd_k, c->qk_norm ? N * c->n_kv_heads : 0);
        ARENA_CARVE(a, s->o_raw, c->post_norms ? N * C : 0);
        ARENA_CARVE(a, s->f_raw, c->post_norms ? N * C : 0);
        ARENA_CARVE(a, s->rstd_o, c->post_norms ? N : 0);
        ARENA_CARVE(a, s->rstd_f, c->post_norms ? N : 0);
    }
    for (int l = n_sets; l < c->n_layers; l++) {
        float *x = p->acts[l].x;
        p->acts[l] = p->acts[0];
        p->acts[l].x = x;
    }
    ARENA_CARVE(a, p->x_out, N * C);
    ARENA_CARVE(a, p->xnf, N * C);
    ARENA_CARVE(a, p->rstdf, N);
    ARENA_CARVE(a, p->dxnf, N * C);
    ARENA_CARVE(a, p->xn, N * C);
    ARENA_CARVE(a, p->h, N * F);
    ARENA_CARVE(a, p->dres, N * C);
    ARENA_CARVE(a, p->dxn, N * C);
    ARENA_CARVE(a, p->tmp, N * C);
    ARENA_CARVE(a, p->dq, N * QD);
    ARENA_CARVE(a, p->datt, N * QD);
    ARENA_CARVE(a, p->dk, N * KD);
    ARENA_CARVE(a, p->dv, N * KD);
    ARENA_CARVE(a, p->dg, N * G);
    ARENA_CARVE(a, p->du, N * F);
    ARENA_CARVE(a, p->dh, N * F);
    ARENA_CARVE(a, p->attn_scratch,
                attention_scratch_floats(p->B, p->T, (int)H, (int)D, p->max_threads));
    ARENA_CARVE(a, p->lora_du, N * r * group);
    ARENA_CARVE(a, p->lora_acat, group > 1 ? group * r * C : 0);
    ARENA_CARVE(a, p->lora_dacat, group > 1 ? group * r * C : 0);
    const int dropout = lora && lora->cfg.dropout > 0.0f;
    ARENA_CARVE(a, p->xd, dropout ? N * max_in : 0);
    ARENA_CARVE(a, p->dxd, dropout ? N * max_in : 0);
    ARENA_CARVE(a, p->logits, (int64_t)p->chunk_rows * c->vocab_size);
    ARENA_CARVE(a, p->rope_cos, T * D / 2);
    ARENA_CARVE(a, p->rope_sin, T * D / 2);
    ARENA_CARVE(a, p->pos, N);
    ARENA_CARVE(a, p->start, N);
    const int local_rope = c->rope_local_theta > 0;
    ARENA_CARVE(a, p->rope_cos_local, local_rope ? T * D / 2 : 0);
    ARENA_CARVE(a, p->rope_sin_local, local_rope ? T * D / 2 : 0);
    ARENA_CARVE(a, p->start_sw, c->sliding_window > 0 ? N : 0);
    ARENA_CARVE(a, p->logits_capped,
                c->final_softcap > 0 ? (int64_t)p->chunk_rows * c->vocab_size : 0);
}

// The plan's fields that plan_carve reads, and the per-layer table it fills.
static int plan_shape(lm_plan *p, const model *m, const lora_adapter *lora, int B, int T,
                      int recompute) {
    memset(p, 0, sizeof *p);
    const model_config *c = &m->cfg;
    if (B <= 0 || T <= 0) return err_set("plan: batch %d x seq_len %d must be positive", B, T);
    if ((int64_t)B * T > INT32_MAX)
        return err_set("plan: batch %d x seq_len %d is more than 2^31 tokens", B, T);
    // Learned positions end at the table; rotary ones are only limited by the tables built here.
    if (c->arch == MODEL_ARCH_GPT2 && T > c->max_position_embeddings)
        return err_set("plan: seq_len %d exceeds the model's %d positions (n_positions)", T,
                       c->max_position_embeddings);
    p->m = m;
    p->lora = lora;
    p->B = B;
    p->T = T;
    p->N = B * T;
    p->recompute = recompute != 0;
    p->max_threads = omp_get_max_threads();
    // As few chunks as the buffer allows (the forward's sgemm packs the head once per chunk),
    // of equal size, so their row blocks in head_backward are equal too.
    int max_rows = LM_LOGITS_CHUNK_FLOATS / c->vocab_size;
    if (max_rows < 1) max_rows = 1;
    const int n_chunks = (p->N + max_rows - 1) / max_rows;
    p->chunk_rows = (p->N + n_chunks - 1) / n_chunks;
    p->acts = calloc((size_t)c->n_layers, sizeof(layer_acts));
    if (!p->acts) return err_set("plan: out of memory for %d layers", c->n_layers);
    return 0;
}

size_t lm_plan_size(const model *m, const lora_adapter *lora, int B, int T, int recompute) {
    lm_plan p;
    if (plan_shape(&p, m, lora, B, T, recompute)) return 0;
    arena_carver sizing = {0};
    plan_carve(&p, &sizing);
    free(p.acts);
    return sizing.used;
}

int lm_plan_init(lm_plan *p, const model *m, const lora_adapter *lora, int B, int T) {
    return lm_plan_init_recompute(p, m, lora, B, T, 0);
}

int lm_plan_init_recompute(lm_plan *p, const model *m, const lora_adapter *lora, int B, int T,
                           int recompute) {
    if (plan_shape(p, m, lora, B, T, recompute)) return -1;
    const model_config *c = &m->cfg;
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
    if (c->rope_local_theta > 0)
        arch_rope_local_init(p->rope_cos_local, p->rope_sin_local, T, c->head_dim, c);
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
    if (p->start_sw)
        arch_sliding_starts(p->start_sw, p->start, p->B, p->T, p->m->cfg.sliding_window);
}

// The rope tables and first keys of layer l (gemma3's sliding layers have their own).
static void layer_rope(const lm_plan *p, int l, const float **cos, const float **sin,
                       const int32_t **start) {
    const int local = arch_layer_local_rope(&p->m->cfg, l);
    *cos = local ? p->rope_cos_local : p->rope_cos;
    *sin = local ? p->rope_sin_local : p->rope_sin;
    *start = arch_layer_sliding(&p->m->cfg, l) ? p->start_sw : p->start;
}

// p->h [N, F] = act(g) * u of layer l: GeGLU (gemma3) or SwiGLU. Forward writes it for
// down_proj; backward writes it again (the same bits) rather than keeping it per layer.
// The separate targets that read one input: after attn_norm, after mlp_norm.
static const lora_target LORA_QKV_GROUP[] = {LORA_Q, LORA_K, LORA_V};
static const lora_target LORA_GATE_UP_GROUP[] = {LORA_GATE, LORA_UP};

static void mlp_act_forward(lm_plan *p, int l) {
    const layer_acts *s = &p->acts[l];
    const int64_t n = (int64_t)p->N * p->m->cfg.intermediate_size;
    if (p->m->cfg.gelu_mlp)
        geglu_forward(p->h, s->g, s->u, n);
    else
        swiglu_forward(p->h, s->g, s->u, n);
}

// Writes layer l's activations into p->acts[l] and its output into x_next; x_next NULL (a
// recompute inside backward) stops before the last residual add.
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
    const int R = rope_rotary_dim(c);

    const float *rc, *rs;
    const int32_t *start;
    layer_rope(p, l, &rc, &rs, &start);

    rmsnorm_forward(p->xn, s->rstd1, s->x, w->attn_norm, N, C, c->rms_norm_eps);
    float *q = c->qk_norm ? s->q_raw : s->q, *k = c->qk_norm ? s->k_raw : s->k;
    const weight_mat *const wqkv[] = {&w->wq, &w->wk, &w->wv};
    proj_group_forward(p, (float *const[]){q, k, s->v}, p->xn, wqkv,
                       (const float *const[]){w->bq, w->bk, w->bv}, l, LORA_QKV_GROUP, 3, C);
    proj_fused_lora_forward(p, (float *const[]){q, k, s->v}, (const int[]){QD, KD, KD}, 3, p->xn,
                            l, LORA_QKV, C);
    if (c->qk_norm) {  // [N*H, D] rows: one norm per head
        rmsnorm_forward(s->q, s->rstd_q, s->q_raw, w->q_norm, N * H, D, c->rms_norm_eps);
        rmsnorm_forward(s->k, s->rstd_k, s->k_raw, w->k_norm, N * KV, D, c->rms_norm_eps);
    }
    rope_partial_forward(s->q, p->pos, rc, rs, N, H, D, R);
    rope_partial_forward(s->k, p->pos, rc, rs, N, KV, D, R);
    if (c->q_scale > 0) scale_inplace(s->q, (int64_t)N * QD, c->q_scale);
    attention_forward(s->att, s->lse, p->attn_scratch, p->max_threads, s->q, s->k, s->v, start,
                      p->B, p->T, H, KV, D);
    proj_forward(p, c->post_norms ? s->o_raw : p->tmp, s->att, &w->wo, w->bo, l, LORA_O, QD, C);
    if (c->post_norms)
        rmsnorm_forward(p->tmp, s->rstd_o, s->o_raw, w->post_attn_norm, N, C, c->rms_norm_eps);
    memcpy(s->xmid, s->x, (size_t)N * C * sizeof(float));
    add_inplace(s->xmid, p->tmp, (int64_t)N * C);

    rmsnorm_forward(p->xn, s->rstd2, s->xmid, w->mlp_norm, N, C, c->rms_norm_eps);
    proj_group_forward(p, (float *const[]){s->g, s->u}, p->xn,
                       (const weight_mat *const[]){&w->w_gate, &w->w_up}, NULL, l,
                       LORA_GATE_UP_GROUP, 2, C);
    proj_fused_lora_forward(p, (float *const[]){s->g, s->u}, (const int[]){F, F}, 2, p->xn, l,
                            LORA_GATE_UP, C);
    mlp_act_forward(p, l);
    // down_proj runs in a recompute too: its LoRA intermediate lora_u is needed, and so are
    // f_raw and rstd_f of the post-norm.
    proj_forward(p, c->post_norms ? s->f_raw : p->tmp, p->h, &w->w_down, NULL, l, LORA_DOWN, F,
                 C);
    if (c->post_norms)
        rmsnorm_forward(p->tmp, s->rstd_f, s->f_raw, w->post_ffn_norm, N, C, c->rms_norm_eps);
    if (!x_next) return;
    memcpy(x_next, s->xmid, (size_t)N * C * sizeof(float));
    add_inplace(x_next, p->tmp, (int64_t)N * C);
}

// p->dres holds d(loss)/d(layer output) on entry and d(loss)/d(layer input) on return (not for
// layer 0, whose input gradient nothing reads). The input norms' outputs and h are recomputed
// by the forward ops themselves, so they are the bits the forward projections read
// (rmsnorm_forward rewrites rstd with the same value). The other norms' outputs are never
// read: q and k are kept after their per-head norm and RoPE, and a post-norm's output only
// went into the residual stream (its backward reads o_raw / f_raw and rstd_o / rstd_f).
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
    const int R = rope_rotary_dim(c);
    const float *rc, *rs;
    const int32_t *start;
    layer_rope(p, l, &rc, &rs, &start);
    // With post-norms the projections' output gradient goes through the norm first; p->tmp
    // (forward scratch) holds it.
    const float *dy = p->dres;
    if (c->post_norms) {
        memset(p->tmp, 0, (size_t)N * C * fl);
        rmsnorm_backward(p->tmp, p->dres, s->f_raw, w->post_ffn_norm, s->rstd_f, N, C);
        dy = p->tmp;
    }

    mlp_act_forward(p, l);
    memset(p->dh, 0, (size_t)N * F * fl);
    proj_backward(p, p->dh, dy, p->h, &w->w_down, l, LORA_DOWN, F, C, 1);
    memset(p->dg, 0, (size_t)N * F * fl);
    memset(p->du, 0, (size_t)N * F * fl);
    if (c->gelu_mlp)
        geglu_backward(p->dg, p->du, p->dh, s->g, s->u, (int64_t)N * F);
    else
        swiglu_backward(p->dg, p->du, p->dh, s->g, s->u, (int64_t)N * F);
    rmsnorm_forward(p->xn, s->rstd2, s->xmid, w->mlp_norm, N, C, c->rms_norm_eps);
    memset(p->dxn, 0, (size_t)N * C * fl);
    proj_group_backward(p, p->dxn, (const float *const[]){p->dg, p->du}, p->xn,
                        (const weight_mat *const[]){&w->w_gate, &w->w_up}, l,
                        LORA_GATE_UP_GROUP, 2, C, 1);
    proj_fused_lora_backward(p, p->dxn, (const float *const[]){p->dg, p->du}, (const int[]){F, F},
                             2, p->xn, l, LORA_GATE_UP, C);
    rmsnorm_backward(p->dres, p->dxn, s->xmid, w->mlp_norm, s->rstd2, N, C);

    dy = p->dres;
    if (c->post_norms) {
        memset(p->tmp, 0, (size_t)N * C * fl);
        rmsnorm_backward(p->tmp, p->dres, s->o_raw, w->post_attn_norm, s->rstd_o, N, C);
        dy = p->tmp;
    }
    memset(p->datt, 0, (size_t)N * QD * fl);
    proj_backward(p, p->datt, dy, s->att, &w->wo, l, LORA_O, QD, C, 1);
    memset(p->dk, 0, (size_t)N * KD * fl);
    memset(p->dv, 0, (size_t)N * KD * fl);
    attention_backward(p->dq, p->dk, p->dv, p->attn_scratch, p->max_threads, p->datt, s->att,
                       s->lse, s->q, s->k, s->v, start, p->B, p->T, H, KV, D);
    if (c->q_scale > 0) scale_inplace(p->dq, (int64_t)N * QD, c->q_scale);
    rope_partial_backward(p->dq, p->pos, rc, rs, N, H, D, R);
    rope_partial_backward(p->dk, p->pos, rc, rs, N, KV, D, R);
    rmsnorm_forward(p->xn, s->rstd1, s->x, w->attn_norm, N, C, c->rms_norm_eps);
    memset(p->dxn, 0, (size_t)N * C * fl);
    // Layer 0's frozen products are skipped (fz 0); its LoRA gradients still need dq and dk.
    const int fz = l > 0;
    const weight_mat *const wqkv[] = {&w->wq, &w->wk, &w->wv};
    if (c->qk_norm) {
        // Through the per-head norms: datt (consumed above) takes dq_raw, then dq (read by
        // then; KD <= QD) takes dk_raw. No qk_norm architecture has a fused qkv target
        // (lora_arch_targets), so LORA_QKV is off here.
        memset(p->datt, 0, (size_t)N * QD * fl);
        rmsnorm_backward(p->datt, p->dq, s->q_raw, w->q_norm, s->rstd_q, N * H, D);
        memset(p->dq, 0, (size_t)N * KD * fl);
        rmsnorm_backward(p->dq, p->dk, s->k_raw, w->k_norm, s->rstd_k, N * KV, D);
        proj_group_backward(p, p->dxn, (const float *const[]){p->datt, p->dq, p->dv}, p->xn,
                            wqkv, l, LORA_QKV_GROUP, 3, C, fz);
    } else {
        proj_group_backward(p, p->dxn, (const float *const[]){p->dq, p->dk, p->dv}, p->xn, wqkv,
                            l, LORA_QKV_GROUP, 3, C, fz);
        proj_fused_lora_backward(p, p->dxn, (const float *const[]){p->dq, p->dk, p->dv},
                                 (const int[]){QD, KD, KD}, 3, p->xn, l, LORA_QKV, C);
    }
    // The first layer's input gradient would only reach the frozen embedding.
    if (l > 0) rmsnorm_backward(p->dres, p->dxn, s->x, w->attn_norm, s->rstd1, N, C);
}

static void trunk_forward(lm_plan *p, const lm_batch *b) {
    const model_config *c = &p->m->cfg;
    batch_layout(p, b);
    embedding_forward(p->acts[0].x, b->tokens, &p->m->embed, p->N);
    if (c->embed_scale > 0)
        scale_inplace(p->acts[0].x, (int64_t)p->N * c->hidden_size, c->embed_scale);
    if (p->m->pos_embed)
        pos_embedding_add(p->acts[0].x, p->pos, p->m->pos_embed, p->N, c->hidden_size);
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

// dX of the head for rows n0.. of the chunk whose dlogits are in p->logits, into p->dxnf.
// F32: a split of the rows that depends on `rows` alone, one single-threaded sgemm per block
// (OpenBLAS runs single-threaded inside a parallel region): one threaded sgemm gave other sums
// with 1 and 2 threads for K = V = 397 or 400 (not 512), so a run depended on its thread count
// (tests/train/check_threads.py, random model). Stored types other than F32 take
// weight_matmul_backward, whose column tiles do not depend on the thread count either.
static void head_backward(lm_plan *p, int n0, int rows) {
    const int C = p->m->cfg.hidden_size, V = p->m->cfg.vocab_size;
    if (p->m->lm_head.type != GGML_TYPE_F32) {
        float *dx = p->dxnf + (int64_t)n0 * C;
        memset(dx, 0, (size_t)rows * C * sizeof(float));
        weight_matmul_backward(dx, p->logits, &p->m->lm_head, rows);
        return;
    }
    int n_blocks = (rows + LM_DX_BLOCK_ROWS - 1) / LM_DX_BLOCK_ROWS;
    if (n_blocks < 2 && rows >= 2 * LM_DX_MIN_ROWS) n_blocks = 2;
    const int block = (rows + n_blocks - 1) / n_blocks;
#pragma omp parallel for schedule(static)
    for (int r0 = 0; r0 < rows; r0 += block) {
        int nr = rows - r0 < block ? rows - r0 : block;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nr, C, V, 1.0f,
                    p->logits + (int64_t)r0 * V, V, p->m->lm_head.data, C, 0.0f,
                    p->dxnf + (int64_t)(n0 + r0) * C, C);
    }
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
        weight_matmul_forward(p->logits, xr, &p->m->lm_head, NULL, rows);
        if (c->final_softcap > 0) {
            softcap_forward(p->logits, (int64_t)rows * V, c->final_softcap);
            memcpy(p->logits_capped, p->logits, (size_t)rows * V * sizeof(float));
        }
        loss += crossentropy_forward_backward(need_grad ? p->logits : NULL, p->logits,
                                              b->targets + n0, rows, V, grad_scale, n_targets);
        if (need_grad && c->final_softcap > 0)
            softcap_backward(p->logits, p->logits_capped, (int64_t)rows * V, c->final_softcap);
        if (need_grad) head_backward(p, n0, rows);
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
    for (int l = c->n_layers - 1; l >= 0; l--) {
        // The shared set still holds the last layer's activations from the forward pass.
        if (p->recompute && l + 1 < c->n_layers) layer_forward(p, l, NULL);
        layer_backward(p, l);
    }
}

void lm_forward_logps(lm_plan *p, const lm_batch *b, double *logp) {
    const model_config *c = &p->m->cfg;
    const int C = c->hidden_size, V = c->vocab_size;
    trunk_forward(p, b);
    for (int n0 = 0; n0 < p->N; n0 += p->chunk_rows) {
        int rows = p->N - n0 < p->chunk_rows ? p->N - n0 : p->chunk_rows;
        weight_matmul_forward(p->logits, p->xnf + (int64_t)n0 * C, &p->m->lm_head, NULL, rows);
        if (c->final_softcap > 0) softcap_forward(p->logits, (int64_t)rows * V, c->final_softcap);
#pragma omp parallel for schedule(static)
        for (int r = 0; r < rows; r++) {
            int64_t counted = 0;
            logp[n0 + r] = -crossentropy_forward_backward(NULL, p->logits + (int64_t)r * V,
                                                          b->targets + n0 + r, 1, V, 0.0f,
                                                          &counted);
        }
    }
}

void lm_backward_weighted(lm_plan *p, const lm_batch *b, const float *weight) {
    const model_config *c = &p->m->cfg;
    const int C = c->hidden_size, V = c->vocab_size;
    for (int n0 = 0; n0 < p->N; n0 += p->chunk_rows) {
        int rows = p->N - n0 < p->chunk_rows ? p->N - n0 : p->chunk_rows;
        weight_matmul_forward(p->logits, p->xnf + (int64_t)n0 * C, &p->m->lm_head, NULL, rows);
        if (c->final_softcap > 0) {
            softcap_forward(p->logits, (int64_t)rows * V, c->final_softcap);
            memcpy(p->logits_capped, p->logits, (size_t)rows * V * sizeof(float));
        }
#pragma omp parallel for schedule(static)
        for (int r = 0; r < rows; r++) {
            float *z = p->logits + (int64_t)r * V;
            int64_t counted = 0;
            if (weight[n0 + r] == 0.0f) memset(z, 0, (size_t)V * sizeof(float));
            else
                crossentropy_forward_backward(z, z, b->targets + n0 + r, 1, V, weight[n0 + r],
                                              &counted);
        }
        if (c->final_softcap > 0)
            softcap_backward(p->logits, p->logits_capped, (int64_t)rows * V, c->final_softcap);
        head_backward(p, n0, rows);
    }
    lm_backward(p);
}

void lm_logits(lm_plan *p, const lm_batch *b, float *logits) {
    const model_config *c = &p->m->cfg;
    trunk_forward(p, b);
    weight_matmul_forward(logits, p->xnf, &p->m->lm_head, NULL, p->N);
    if (c->final_softcap > 0)
        softcap_forward(logits, (int64_t)p->N * c->vocab_size, c->final_softcap);
}
