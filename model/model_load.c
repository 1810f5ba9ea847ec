// model_load(): dispatch on the kind of path, plus the helpers both loaders share.
#include "model/model_load.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileio.h"
#include "formats/gguf.h"
#include "model/arch.h"

const char *model_arch_name(model_arch a) {
    switch (a) {
    case MODEL_ARCH_LLAMA: return "llama";
    case MODEL_ARCH_MISTRAL: return "mistral";
    case MODEL_ARCH_QWEN2: return "qwen2";
    case MODEL_ARCH_QWEN3: return "qwen3";
    case MODEL_ARCH_GEMMA3: return "gemma3";
    case MODEL_ARCH_PHI3: return "phi3";
    case MODEL_ARCH_GPT2: return "gpt2";
    }
    return "?";
}

int model_load(model *m, const char *path) { return model_load_as(m, path, BASE_DTYPE_KEEP); }

int model_load_as(model *m, const char *path, base_dtype dtype) {
    memset(m, 0, sizeof *m);
    if (!path_exists(path)) return err_set("%s: no such file or directory", path);
    int rc;
    if (path_is_dir(path)) {
        rc = model_load_hf(m, path, dtype);
    } else if (gguf_path_is_gguf(path)) {
        // A GGUF's types were chosen when it was quantized: converting them again would only
        // lose precision (bf16 of a Q4_K) or memory (q8_0 of a Q4_K).
        if (dtype != BASE_DTYPE_KEEP)
            return err_set("%s: base_dtype: %s applies to Hugging Face bases; a GGUF is kept in "
                           "its stored types (use keep)",
                           path, dtype == BASE_DTYPE_BF16 ? "bf16" : "q8_0");
        rc = model_load_gguf(m, path);
    } else
        return err_set("%s: not a model (expected a Hugging Face directory or a .gguf file)",
                       path);
    if (rc != 0) {
        model_free(m);
        return -1;
    }
    snprintf(m->source_path, sizeof m->source_path, "%s", path);
    return 0;
}

void weight_slot_set(weight_slot *s, float *dst, int64_t rows, int64_t cols, const char *hf,
                     const char *gguf) {
    memset(s, 0, sizeof *s);
    s->dst = dst;
    s->rows = rows;
    s->cols = cols;
    snprintf(s->hf_name, sizeof s->hf_name, "%s", hf);
    snprintf(s->gguf_name, sizeof s->gguf_name, "%s", gguf);
}

// A matrix slot: its fp32 storage is the matrix's data when model_alloc put it in the arena.
void weight_slot_mat(weight_slot *s, weight_mat *mat) {
    s->mat = mat;
    if (mat->data && mat->type == GGML_TYPE_F32) s->dst = (float *)mat->data;
}

weight_slot *weight_slot_layer(weight_slot *s, const char *hf_block, int layer, float *dst,
                               weight_mat *mat, int64_t rows, int64_t cols, const char *hf,
                               const char *gguf) {
    char hf_name[sizeof s->hf_name], gguf_name[sizeof s->gguf_name];
    snprintf(hf_name, sizeof hf_name, "%s.%d.%s", hf_block, layer, hf);
    snprintf(gguf_name, sizeof gguf_name, "blk.%d.%s", layer, gguf);
    weight_slot_set(s, dst, rows, cols, hf_name, gguf_name);
    if (mat) weight_slot_mat(s, mat);
    return s;
}

int weight_slots_outer(model *m, weight_slot *s) {
    const model_config *c = &m->cfg;
    const int64_t C = c->hidden_size, V = c->vocab_size;
    int n = 0;
    weight_slot_set(&s[n++], NULL, V, C, "model.embed_tokens.weight", "token_embd.weight");
    weight_slot_mat(&s[n - 1], &m->embed);
    weight_slot_set(&s[n++], m->final_norm, C, 0, "model.norm.weight", "output_norm.weight");
    if (!c->tie_word_embeddings) {
        weight_slot_set(&s[n++], NULL, V, C, "lm_head.weight", "output.weight");
        weight_slot_mat(&s[n - 1], &m->lm_head);
    }
    return n;
}

int weight_slots_list(model *m, weight_slot **out, int *n_out) {
    const model_config *c = &m->cfg;
    if (c->arch == MODEL_ARCH_PHI3) return phi3_weight_slots(m, out, n_out);
    if (c->arch == MODEL_ARCH_GPT2) return gpt2_weight_slots(m, out, n_out);
    int64_t C = c->hidden_size, F = c->intermediate_size;
    int64_t q = (int64_t)c->n_heads * c->head_dim, kv = (int64_t)c->n_kv_heads * c->head_dim;
    int per_layer = 9 + (c->attention_bias ? 3 : 0) + (c->qk_norm ? 2 : 0) +
                    (c->post_norms ? 2 : 0) + (c->out_bias ? 1 : 0);
    int cap = 3 + c->n_layers * per_layer;
    weight_slot *s = xcalloc_or_err((size_t)cap, sizeof *s, "model");
    if (!s) return -1;
    int n = weight_slots_outer(m, s);
    for (int l = 0; l < c->n_layers; l++) {
        layer_weights *w = &m->layers[l];
#define SLOT(dst, rows, cols, hfname, ggname) \
    weight_slot_layer(&s[n++], "model.layers", l, dst, NULL, rows, cols, hfname, ggname)
#define MSLOT(mat, rows, cols, hfname, ggname) \
    weight_slot_layer(&s[n++], "model.layers", l, NULL, &(mat), rows, cols, hfname, ggname)
        SLOT(w->attn_norm, C, 0, "input_layernorm.weight", "attn_norm.weight");
        MSLOT(w->wq, q, C, "self_attn.q_proj.weight", "attn_q.weight");
        s[n - 1].qk_heads = c->n_heads;
        MSLOT(w->wk, kv, C, "self_attn.k_proj.weight", "attn_k.weight");
        s[n - 1].qk_heads = c->n_kv_heads;
        MSLOT(w->wv, kv, C, "self_attn.v_proj.weight", "attn_v.weight");
        if (c->attention_bias) {
            SLOT(w->bq, q, 0, "self_attn.q_proj.bias", "attn_q.bias");
            s[n - 1].qk_heads = c->n_heads;
            SLOT(w->bk, kv, 0, "self_attn.k_proj.bias", "attn_k.bias");
            s[n - 1].qk_heads = c->n_kv_heads;
            SLOT(w->bv, kv, 0, "self_attn.v_proj.bias", "attn_v.bias");
        }
        MSLOT(w->wo, C, q, "self_attn.o_proj.weight", "attn_output.weight");
        if (c->post_norms)  // gemma3: post_attention_layernorm is the attention output's norm
            SLOT(w->mlp_norm, C, 0, "pre_feedforward_layernorm.weight", "ffn_norm.weight");
        else
            SLOT(w->mlp_norm, C, 0, "post_attention_layernorm.weight", "ffn_norm.weight");
        MSLOT(w->w_gate, F, C, "mlp.gate_proj.weight", "ffn_gate.weight");
        MSLOT(w->w_up, F, C, "mlp.up_proj.weight", "ffn_up.weight");
        MSLOT(w->w_down, C, F, "mlp.down_proj.weight", "ffn_down.weight");
        if (c->qk_norm) {
            SLOT(w->q_norm, c->head_dim, 0, "self_attn.q_norm.weight", "attn_q_norm.weight");
            SLOT(w->k_norm, c->head_dim, 0, "self_attn.k_norm.weight", "attn_k_norm.weight");
        }
        if (c->post_norms) {
            SLOT(w->post_attn_norm, C, 0, "post_attention_layernorm.weight",
                 "post_attention_norm.weight");
            SLOT(w->post_ffn_norm, C, 0, "post_feedforward_layernorm.weight",
                 "post_ffw_norm.weight");
        }
        if (c->out_bias) SLOT(w->bo, C, 0, "self_attn.o_proj.bias", "attn_output.bias");
#undef MSLOT
#undef SLOT
    }
    *out = s;
    *n_out = n;
    return 0;
}

void dtype_tally_add(dtype_tally *t, const char *name) {
    for (int i = 0; i < t->n; i++)
        if (!strcmp(t->names[i], name)) {
            t->counts[i]++;
            return;
        }
    if (t->n < (int)(sizeof t->names / sizeof t->names[0])) {
        t->names[t->n] = name;
        t->counts[t->n++] = 1;
    }
}

void dtype_tally_format(const dtype_tally *t, char *out, size_t size) {
    int used[16] = {0};
    size_t at = 0;
    out[0] = '\0';
    for (int k = 0; k < t->n; k++) {
        int best = -1;
        for (int i = 0; i < t->n; i++)
            if (!used[i] && (best < 0 || t->counts[i] > t->counts[best])) best = i;
        used[best] = 1;
        int w = snprintf(out + at, size - at, "%s%s", k ? "+" : "", t->names[best]);
        if (w < 0 || (size_t)w >= size - at) return;
        at += (size_t)w;
    }
}

void qk_rows_unpermute_bytes(void *dst, const void *src, int n_heads, int head_dim,
                             size_t row_bytes) {
    int half = head_dim / 2;
    for (int h = 0; h < n_heads; h++)
        for (int a = 0; a < 2; a++)
            for (int j = 0; j < half; j++) {
                size_t hf_row = (size_t)h * head_dim + a * half + j;
                size_t gg_row = (size_t)h * head_dim + 2 * j + a;
                memcpy((char *)dst + hf_row * row_bytes, (const char *)src + gg_row * row_bytes,
                       row_bytes);
            }
}

void qk_rows_unpermute(float *dst, const float *src, int n_heads, int head_dim, int64_t cols) {
    qk_rows_unpermute_bytes(dst, src, n_heads, head_dim, (size_t)cols * sizeof(float));
}
