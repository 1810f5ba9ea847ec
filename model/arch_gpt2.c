// GPT-2 (and BioMedLM): pre-LayerNorm blocks with biases, learned absolute positions, a
// GELU-tanh MLP and a head tied to wte, following transformers' modeling_gpt2.py. HF stores
// the Conv1D weights [in, out]; they are transposed at load (in their stored type) to the
// [out, in] of every other projection, so c_attn is [q; k; v]: wq/wk/wv are views of its rows
// (bq/bk/bv of its bias, adjacent in the arena).
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cblas.h>

#include "common/error.h"
#include "model/arch.h"
#include "model/attention.h"

int gpt2_weight_slots(model *m, weight_slot **out, int *n_out) {
    const model_config *c = &m->cfg;
    int64_t C = c->hidden_size, F = c->intermediate_size, V = c->vocab_size;
    int64_t P = c->max_position_embeddings;
    weight_slot *s = xcalloc_or_err((size_t)(5 + 12 * c->n_layers), sizeof *s, "model");
    if (!s) return -1;
    int n = 0;
    weight_slot_set(&s[n++], NULL, V, C, "transformer.wte.weight", "token_embd.weight");
    weight_slot_mat(&s[n - 1], &m->embed);
    weight_slot_set(&s[n++], m->pos_embed, P, C, "transformer.wpe.weight", "position_embd.weight");
    weight_slot_set(&s[n++], m->final_norm, C, 0, "transformer.ln_f.weight", "output_norm.weight");
    weight_slot_set(&s[n++], m->final_norm_b, C, 0, "transformer.ln_f.bias", "output_norm.bias");
    // Only GGUF files can be untied (a separate output.weight); HF gpt2 configs are refused.
    if (!c->tie_word_embeddings) {
        weight_slot_set(&s[n++], NULL, V, C, "lm_head.weight", "output.weight");
        weight_slot_mat(&s[n - 1], &m->lm_head);
    }
    for (int l = 0; l < c->n_layers; l++) {
        layer_weights *w = &m->layers[l];
// conv1d: HF's Conv1D stores the matrix transposed ([in, out]).
#define SLOT(dst, rows, cols, conv1d, hfname, ggname)                                       \
    weight_slot_layer(&s[n++], "transformer.h", l, dst, NULL, rows, cols, hfname, ggname) \
        ->hf_transposed = conv1d
#define MSLOT(mat, rows, cols, hfname, ggname)                                                \
    weight_slot_layer(&s[n++], "transformer.h", l, NULL, &(mat), rows, cols, hfname, ggname) \
        ->hf_transposed = 1
        SLOT(w->attn_norm, C, 0, 0, "ln_1.weight", "attn_norm.weight");
        SLOT(w->attn_norm_b, C, 0, 0, "ln_1.bias", "attn_norm.bias");
        MSLOT(w->wq, 3 * C, C, "attn.c_attn.weight", "attn_qkv.weight");
        SLOT(w->bq, 3 * C, 0, 0, "attn.c_attn.bias", "attn_qkv.bias");
        MSLOT(w->wo, C, C, "attn.c_proj.weight", "attn_output.weight");
        SLOT(w->bo, C, 0, 0, "attn.c_proj.bias", "attn_output.bias");
        SLOT(w->mlp_norm, C, 0, 0, "ln_2.weight", "ffn_norm.weight");
        SLOT(w->mlp_norm_b, C, 0, 0, "ln_2.bias", "ffn_norm.bias");
        MSLOT(w->w_up, F, C, "mlp.c_fc.weight", "ffn_up.weight");
        SLOT(w->b_up, F, 0, 0, "mlp.c_fc.bias", "ffn_up.bias");
        MSLOT(w->w_down, C, F, "mlp.c_proj.weight", "ffn_down.weight");
        SLOT(w->b_down, C, 0, 0, "mlp.c_proj.bias", "ffn_down.bias");
#undef MSLOT
#undef SLOT
    }
    *out = s;
    *n_out = n;
    return 0;
}

void layernorm_forward(float *out, float *rstd, const float *inp, const float *w, const float *b,
                       int N, int C, float eps) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (int64_t)n * C;
        float *y = out + (int64_t)n * C;
        float mean = 0.0f, var = 0.0f;
        for (int i = 0; i < C; i++) mean += x[i];
        mean /= (float)C;
        for (int i = 0; i < C; i++) var += (x[i] - mean) * (x[i] - mean);
        float r = 1.0f / sqrtf(var / (float)C + eps);
        for (int i = 0; i < C; i++) y[i] = (x[i] - mean) * r * w[i] + b[i];
        rstd[n] = r;
    }
}

// With xh = (x - mean) r and g = w dy: dx = r (g - mean(g) - xh mean(g xh)).
void layernorm_backward(float *dinp, const float *dout, const float *inp, const float *w,
                        const float *rstd, int N, int C) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (int64_t)n * C, *dy = dout + (int64_t)n * C;
        float *dx = dinp + (int64_t)n * C;
        float r = rstd[n], mean = 0.0f;
        for (int i = 0; i < C; i++) mean += x[i];
        mean /= (float)C;
        float g_mean = 0.0f, gx_mean = 0.0f;
        for (int i = 0; i < C; i++) {
            float g = w[i] * dy[i];
            g_mean += g;
            gx_mean += g * (x[i] - mean) * r;
        }
        g_mean /= (float)C;
        gx_mean /= (float)C;
        for (int i = 0; i < C; i++)
            dx[i] += r * (w[i] * dy[i] - g_mean - (x[i] - mean) * r * gx_mean);
    }
}

#define GELU_K 0.7978845608028654f  // sqrt(2 / pi)

void gelu_tanh_forward(float *h, const float *u, int64_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float x = u[i];
        h[i] = 0.5f * x * (1.0f + tanhf(GELU_K * (x + 0.044715f * x * x * x)));
    }
}

void gelu_tanh_backward(float *du, const float *dh, const float *u, int64_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float x = u[i];
        float t = tanhf(GELU_K * (x + 0.044715f * x * x * x));
        float dt = (1.0f - t * t) * GELU_K * (1.0f + 3.0f * 0.044715f * x * x);
        du[i] += dh[i] * (0.5f * (1.0f + t) + 0.5f * x * dt);
    }
}

void pos_embedding_add(float *x, const int32_t *pos, const float *wpe, int N, int C) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *e = wpe + (int64_t)pos[n] * C;
        float *y = x + (int64_t)n * C;
        for (int i = 0; i < C; i++) y[i] += e[i];
    }
}

static void residual_add(float *y, const float *a, const float *b, int64_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

// scale_attn_by_inverse_layer_idx divides the scores q.k / sqrt(D) of layer l by l + 1: done
// on q before attention, and on dq after its backward.
static float layer_q_scale(const model_config *c, int l) {
    return c->attn_scale_inverse_layer ? 1.0f / (float)(l + 1) : 1.0f;
}

// Shapes: x, xmid, p->xn [N, C]; q, k, v, att [N, C]; u (c_fc output), p->h (GELU) [N, F].
// As the Llama-family layer: the LayerNorm outputs and GELU(u) live in the plan's shared xn and
// h, and x_next NULL (a recompute inside backward) stops before the last residual add.
void gpt2_layer_forward(lm_plan *p, int l, float *x_next) {
    const model_config *c = &p->m->cfg;
    const layer_weights *w = &p->m->layers[l];
    layer_acts *s = &p->acts[l];
    const int N = p->N, C = c->hidden_size, F = c->intermediate_size, D = c->head_dim;
    const int H = c->n_heads;
    layernorm_forward(p->xn, s->rstd1, s->x, w->attn_norm, w->attn_norm_b, N, C,
                      c->rms_norm_eps);
    proj_forward(p, s->q, p->xn, &w->wq, w->bq, l, LORA_Q, C, C);
    proj_forward(p, s->k, p->xn, &w->wk, w->bk, l, LORA_K, C, C);
    proj_forward(p, s->v, p->xn, &w->wv, w->bv, l, LORA_V, C, C);
    proj_fused_lora_forward(p, (float *const[]){s->q, s->k, s->v}, (const int[]){C, C, C}, 3,
                            p->xn, l, LORA_QKV, C);
    float qs = layer_q_scale(c, l);
    if (qs != 1.0f) cblas_sscal(N * C, qs, s->q, 1);
    attention_forward(s->att, s->lse, p->attn_scratch, p->max_threads, s->q, s->k, s->v,
                      p->start, p->B, p->T, H, H, D);
    proj_forward(p, p->tmp, s->att, &w->wo, w->bo, l, LORA_O, C, C);
    residual_add(s->xmid, s->x, p->tmp, (int64_t)N * C);
    layernorm_forward(p->xn, s->rstd2, s->xmid, w->mlp_norm, w->mlp_norm_b, N, C,
                      c->rms_norm_eps);
    proj_forward(p, s->u, p->xn, &w->w_up, w->b_up, l, LORA_UP, C, F);
    gelu_tanh_forward(p->h, s->u, (int64_t)N * F);
    // c_proj runs in a recompute too: its LoRA intermediate lora_u is needed.
    proj_forward(p, p->tmp, p->h, &w->w_down, w->b_down, l, LORA_DOWN, F, C);
    if (!x_next) return;
    residual_add(x_next, s->xmid, p->tmp, (int64_t)N * C);
}

// p->dres: d(loss)/d(block output) in, d(loss)/d(block input) out (not for layer 0: its input
// gradient would only reach the frozen wte and wpe). xn and h are rewritten from x, xmid and u
// before the projections that read them, the bits the forward read.
void gpt2_layer_backward(lm_plan *p, int l) {
    const model_config *c = &p->m->cfg;
    const layer_weights *w = &p->m->layers[l];
    layer_acts *s = &p->acts[l];
    const int N = p->N, C = c->hidden_size, F = c->intermediate_size, D = c->head_dim;
    const int H = c->n_heads;
    const size_t fl = sizeof(float);

    gelu_tanh_forward(p->h, s->u, (int64_t)N * F);
    memset(p->dh, 0, (size_t)N * F * fl);
    proj_backward(p, p->dh, p->dres, p->h, &w->w_down, l, LORA_DOWN, F, C, 1);
    memset(p->du, 0, (size_t)N * F * fl);
    gelu_tanh_backward(p->du, p->dh, s->u, (int64_t)N * F);
    layernorm_forward(p->xn, s->rstd2, s->xmid, w->mlp_norm, w->mlp_norm_b, N, C,
                      c->rms_norm_eps);
    memset(p->dxn, 0, (size_t)N * C * fl);
    proj_backward(p, p->dxn, p->du, p->xn, &w->w_up, l, LORA_UP, C, F, 1);
    layernorm_backward(p->dres, p->dxn, s->xmid, w->mlp_norm, s->rstd2, N, C);

    memset(p->datt, 0, (size_t)N * C * fl);
    proj_backward(p, p->datt, p->dres, s->att, &w->wo, l, LORA_O, C, C, 1);
    memset(p->dk, 0, (size_t)N * C * fl);
    memset(p->dv, 0, (size_t)N * C * fl);
    attention_backward(p->dq, p->dk, p->dv, p->attn_scratch, p->max_threads, p->datt, s->att,
                       s->lse, s->q, s->k, s->v, p->start, p->B, p->T, H, H, D);
    float qs = layer_q_scale(c, l);
    if (qs != 1.0f) cblas_sscal(N * C, qs, p->dq, 1);
    layernorm_forward(p->xn, s->rstd1, s->x, w->attn_norm, w->attn_norm_b, N, C,
                      c->rms_norm_eps);
    memset(p->dxn, 0, (size_t)N * C * fl);
    const int fz = l > 0;  // layer 0's frozen products are skipped, as in transformer.c
    proj_backward(p, p->dxn, p->dq, p->xn, &w->wq, l, LORA_Q, C, C, fz);
    proj_backward(p, p->dxn, p->dk, p->xn, &w->wk, l, LORA_K, C, C, fz);
    proj_backward(p, p->dxn, p->dv, p->xn, &w->wv, l, LORA_V, C, C, fz);
    proj_fused_lora_backward(p, p->dxn, (const float *const[]){p->dq, p->dk, p->dv},
                             (const int[]){C, C, C}, 3, p->xn, l, LORA_QKV, C);
    if (l > 0) layernorm_backward(p->dres, p->dxn, s->x, w->attn_norm, s->rstd1, N, C);
}
