// Phi-3: the Llama block with fused qkv_proj [q; k; v] and gate_up_proj [gate; up] (held as
// stored: wq/wk/wv and w_gate/w_up are views of the fused matrix's rows), partial rotary embeddings
// and LongRoPE, following transformers' modeling_phi3.py and modeling_rope_utils.py.
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/error.h"
#include "model/arch.h"
#include "model/ops.h"

int phi3_weight_slots(model *m, weight_slot **out, int *n_out) {
    const model_config *c = &m->cfg;
    int64_t C = c->hidden_size, F = c->intermediate_size;
    int64_t q = (int64_t)c->n_heads * c->head_dim, kv = (int64_t)c->n_kv_heads * c->head_dim;
    weight_slot *s = xcalloc_or_err((size_t)(3 + 6 * c->n_layers), sizeof *s, "model");
    if (!s) return -1;
    int n = weight_slots_outer(m, s);
    for (int l = 0; l < c->n_layers; l++) {
        layer_weights *w = &m->layers[l];
#define SLOT(dst, rows, cols, hfname, ggname) \
    weight_slot_layer(&s[n++], "model.layers", l, dst, NULL, rows, cols, hfname, ggname)
#define MSLOT(mat, rows, cols, hfname, ggname) \
    weight_slot_layer(&s[n++], "model.layers", l, NULL, &(mat), rows, cols, hfname, ggname)
        SLOT(w->attn_norm, C, 0, "input_layernorm.weight", "attn_norm.weight");
        // llama.cpp keeps both fused (attn_qkv, ffn_up of 2F rows) and does not permute q/k.
        MSLOT(w->wq, q + 2 * kv, C, "self_attn.qkv_proj.weight", "attn_qkv.weight");
        MSLOT(w->wo, C, q, "self_attn.o_proj.weight", "attn_output.weight");
        SLOT(w->mlp_norm, C, 0, "post_attention_layernorm.weight", "ffn_norm.weight");
        MSLOT(w->w_gate, 2 * F, C, "mlp.gate_up_proj.weight", "ffn_up.weight");
        MSLOT(w->w_down, C, F, "mlp.down_proj.weight", "ffn_down.weight");
#undef MSLOT
#undef SLOT
    }
    *out = s;
    *n_out = n;
    return 0;
}

// part = rows r0.. r0+rows-1 of whole (the same bytes, no copy).
static void mat_rows_view(weight_mat *part, const weight_mat *whole, int64_t r0, int64_t rows) {
    *part = *whole;
    part->data = (const char *)whole->data + (size_t)r0 * whole->row_bytes;
    part->rows = rows;
}

void arch_fused_split(model *m) {
    const model_config *c = &m->cfg;
    if (c->arch != MODEL_ARCH_PHI3 && c->arch != MODEL_ARCH_GPT2) return;
    const int64_t q = (int64_t)c->n_heads * c->head_dim, kv = (int64_t)c->n_kv_heads * c->head_dim;
    const int64_t F = c->intermediate_size;
    for (int l = 0; l < c->n_layers; l++) {
        layer_weights *w = &m->layers[l];
        weight_mat qkv = w->wq;
        mat_rows_view(&w->wq, &qkv, 0, q);
        mat_rows_view(&w->wk, &qkv, q, kv);
        mat_rows_view(&w->wv, &qkv, q + kv, kv);
        if (c->arch == MODEL_ARCH_PHI3) {
            weight_mat gate_up = w->w_gate;
            mat_rows_view(&w->w_gate, &gate_up, 0, F);
            mat_rows_view(&w->w_up, &gate_up, F, F);
        }
    }
}

int rope_rotary_dim(const model_config *c) { return c->rotary_dim ? c->rotary_dim : c->head_dim; }

void rope_tables_build(float *cos_t, float *sin_t, int P, const model_config *c, int seq_len) {
    const int R = rope_rotary_dim(c);
    if (c->rope_scaling != ROPE_SCALING_LONGROPE) {
        // The frequencies of R rotated dims are those of a head of R dims.
        rope_tables_init(cos_t, sin_t, P, R, c);
        return;
    }
    const int half = R / 2;
    const float *ext =
        seq_len > c->rope_original_max_position ? c->rope_long_factor : c->rope_short_factor;
    float inv_freq[MODEL_MAX_ROPE_FACTORS];
    // transformers: 1 / (ext_factors * base ** (arange(0, R, 2).float() / R)), in fp32
    for (int j = 0; j < half; j++)
        inv_freq[j] = 1.0f / (ext[j] * powf(c->rope_theta, (float)(2 * j) / (float)R));
    const float scale = c->rope_attention_factor;
    for (int p = 0; p < P; p++)
        for (int j = 0; j < half; j++) {
            float angle = (float)p * inv_freq[j];
            cos_t[(int64_t)p * half + j] = cosf(angle) * scale;
            sin_t[(int64_t)p * half + j] = sinf(angle) * scale;
        }
}

static void rope_partial_rotate(float *x, const int32_t *pos, const float *cos_t,
                                const float *sin_t, int N, int nh, int D, int R, float sign) {
    const int half = R / 2;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *c = cos_t + (int64_t)pos[n] * half, *s = sin_t + (int64_t)pos[n] * half;
        for (int h = 0; h < nh; h++) {
            float *v = x + (int64_t)n * nh * D + (int64_t)h * D;
            for (int j = 0; j < half; j++) {
                float a = v[j], b = v[j + half], sn = sign * s[j];
                v[j] = a * c[j] - b * sn;
                v[j + half] = b * c[j] + a * sn;
            }
        }
    }
}

void rope_partial_forward(float *x, const int32_t *pos, const float *cos_t, const float *sin_t,
                          int N, int nh, int D, int R) {
    rope_partial_rotate(x, pos, cos_t, sin_t, N, nh, D, R, 1.0f);
}

// With longrope's attention factor a, the map is a times a rotation: its transpose is a times
// the rotation by -angle, which is what rotating with the same (scaled) tables and -sin gives.
void rope_partial_backward(float *dx, const int32_t *pos, const float *cos_t, const float *sin_t,
                           int N, int nh, int D, int R) {
    rope_partial_rotate(dx, pos, cos_t, sin_t, N, nh, D, R, -1.0f);
}
