#include "model/model.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/sha256.h"
#include "formats/gguf.h"
#include "model/model_load.h"

static size_t layer_matrix_count(const model_config *c) {
    size_t C = (size_t)c->hidden_size, F = (size_t)c->intermediate_size;
    size_t q = (size_t)c->n_heads * c->head_dim, kv = (size_t)c->n_kv_heads * c->head_dim;
    // gpt2 has no gate projection (its MLP is c_fc, c_proj).
    size_t gate = c->arch == MODEL_ARCH_GPT2 ? 0 : F * C;
    return q * C + 2 * kv * C + C * q + 2 * F * C + gate;
}

static size_t layer_vector_count(const model_config *c) {
    size_t q = (size_t)c->n_heads * c->head_dim, kv = (size_t)c->n_kv_heads * c->head_dim;
    size_t n = 2 * (size_t)c->hidden_size + (c->attention_bias ? q + 2 * kv : 0);
    if (c->qk_norm) n += 2 * (size_t)c->head_dim;
    if (c->post_norms) n += 2 * (size_t)c->hidden_size;
    if (c->out_bias) n += (size_t)c->hidden_size;
    if (c->arch == MODEL_ARCH_GPT2) n += 3 * (size_t)c->hidden_size + (size_t)c->intermediate_size;
    return n;
}

// with_matrices: the arena holds every matrix in fp32 (model_alloc) or only the norms and
// biases (model_alloc_stored, the matrices are set by the loader).
static int alloc_model(model *m, const model_config *cfg, int with_matrices) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    size_t C = (size_t)cfg->hidden_size, V = (size_t)cfg->vocab_size, L = (size_t)cfg->n_layers;
    const int gpt2 = cfg->arch == MODEL_ARCH_GPT2;
    size_t matrices = V * C * (cfg->tie_word_embeddings ? 1 : 2) + L * layer_matrix_count(cfg);
    size_t vectors = C + L * layer_vector_count(cfg);
    // gpt2's ln_f bias and learned positions: a lookup table, held in fp32 like the norms.
    if (gpt2) vectors += C + (size_t)cfg->max_position_embeddings * C;
    size_t n = vectors + (with_matrices ? matrices : 0);
    m->arena = malloc(n * sizeof(float));
    m->layers = calloc((size_t)cfg->n_layers, sizeof(layer_weights));
    if (!m->arena || !m->layers) {
        free(m->arena);
        free(m->layers);
        memset(m, 0, sizeof *m);
        return err_set("model: out of memory for %zu parameters", n);
    }
    m->n_params = matrices + vectors;
    m->arena_bytes = n * sizeof(float);
    float *p = m->arena;
#define MATRIX(w, nr, nc)                                                                   \
    do {                                                                                    \
        if (with_matrices) {                                                                \
            (w) = (weight_mat){.type = GGML_TYPE_F32, .data = p, .rows = (int64_t)(nr),     \
                               .cols = (int64_t)(nc), .row_bytes = (nc) * sizeof(float)};   \
            p += (nr) * (nc);                                                               \
        }                                                                                   \
    } while (0)
    MATRIX(m->embed, V, C);
    m->final_norm = p, p += C;
    if (!cfg->tie_word_embeddings) MATRIX(m->lm_head, V, C);
    if (gpt2) {
        m->final_norm_b = p, p += C;
        m->pos_embed = p, p += (size_t)cfg->max_position_embeddings * C;
    }
    size_t F = (size_t)cfg->intermediate_size;
    size_t q = (size_t)cfg->n_heads * cfg->head_dim, kv = (size_t)cfg->n_kv_heads * cfg->head_dim;
    for (int l = 0; l < cfg->n_layers; l++) {
        layer_weights *w = &m->layers[l];
        w->attn_norm = p, p += C;
        // wq, wk, wv adjacent: phi3's qkv_proj and gpt2's c_attn as one fp32 matrix.
        MATRIX(w->wq, q, C);
        MATRIX(w->wk, kv, C);
        MATRIX(w->wv, kv, C);
        if (cfg->attention_bias) {
            w->bq = p, p += q;
            w->bk = p, p += kv;
            w->bv = p, p += kv;
        }
        MATRIX(w->wo, C, q);
        w->mlp_norm = p, p += C;
        // phi3's gate_up_proj is [gate; up]: w_gate and w_up adjacent hold it as one matrix.
        if (!gpt2) MATRIX(w->w_gate, F, C);
        MATRIX(w->w_up, F, C);
        MATRIX(w->w_down, C, F);
        if (cfg->qk_norm) {
            w->q_norm = p, p += cfg->head_dim;
            w->k_norm = p, p += cfg->head_dim;
        }
        if (cfg->post_norms) {
            w->post_attn_norm = p, p += C;
            w->post_ffn_norm = p, p += C;
        }
        if (cfg->out_bias) w->bo = p, p += C;
        if (gpt2) {
            w->attn_norm_b = p, p += C;
            w->mlp_norm_b = p, p += C;
            w->b_up = p, p += F;
            w->b_down = p, p += C;
        }
    }
#undef MATRIX
    if (cfg->tie_word_embeddings) m->lm_head = m->embed;
    return 0;
}

int model_alloc(model *m, const model_config *cfg) { return alloc_model(m, cfg, 1); }

int model_alloc_stored(model *m, const model_config *cfg) { return alloc_model(m, cfg, 0); }

int model_keep_map(model *m, mapped_file *mf) {
    mapped_file *maps = realloc(m->maps, (size_t)(m->n_maps + 1) * sizeof *maps);
    if (!maps) return err_set("model: out of memory");
    m->maps = maps;
    m->maps[m->n_maps++] = *mf;
    // The model owns the mapping now: the source's close must neither unmap nor close it.
    memset(mf, 0, sizeof *mf);
    mf->fd = -1;
    return 0;
}

void *model_own(model *m, size_t bytes) {
    void **owned = realloc(m->owned, (size_t)(m->n_owned + 1) * sizeof *owned);
    if (!owned) return err_set("model: out of memory"), NULL;
    m->owned = owned;
    void *p = malloc(bytes ? bytes : 1);
    if (!p) return err_set("model: out of memory for %zu bytes of weights", bytes), NULL;
    m->owned[m->n_owned++] = p;
    return p;
}

size_t model_weight_bytes(const model *m) {
    size_t n = weight_mat_bytes(&m->embed);
    if (!m->cfg.tie_word_embeddings) n += weight_mat_bytes(&m->lm_head);
    for (int l = 0; l < m->cfg.n_layers && m->layers; l++) {
        const layer_weights *w = &m->layers[l];
        n += weight_mat_bytes(&w->wq) + weight_mat_bytes(&w->wk) + weight_mat_bytes(&w->wv) +
             weight_mat_bytes(&w->wo) + weight_mat_bytes(&w->w_gate) +
             weight_mat_bytes(&w->w_up) + weight_mat_bytes(&w->w_down);
    }
    return n;
}

size_t model_memory_bytes(const model *m) {
    // With model_alloc the matrices are inside the arena: count them once.
    const int in_arena = m->embed.data == (const void *)m->arena;
    return m->arena_bytes + (in_arena ? 0 : model_weight_bytes(m));
}

void model_free(model *m) {
    for (int i = 0; i < m->n_maps; i++) mapped_file_close(&m->maps[i]);
    for (int i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->maps);
    free(m->owned);
    free(m->arena);
    free(m->layers);
    memset(m, 0, sizeof *m);
}

int model_config_validate(const model_config *c, const char *file) {
    if (c->hidden_size <= 0) return err_set("%s: hidden_size: must be positive", file);
    if (c->intermediate_size <= 0) return err_set("%s: intermediate_size: must be positive", file);
    if (c->n_layers <= 0) return err_set("%s: num_hidden_layers: must be positive", file);
    if (c->n_heads <= 0) return err_set("%s: num_attention_heads: must be positive", file);
    if (c->n_kv_heads <= 0 || c->n_heads % c->n_kv_heads != 0)
        return err_set("%s: num_key_value_heads: %d does not divide num_attention_heads %d", file,
                       c->n_kv_heads, c->n_heads);
    if (c->head_dim <= 0 || c->head_dim % 2 != 0)
        return err_set("%s: head_dim: %d must be positive and even for rotary embeddings", file,
                       c->head_dim);
    if (c->vocab_size <= 0) return err_set("%s: vocab_size: must be positive", file);
    if (!(c->rms_norm_eps > 0)) return err_set("%s: rms_norm_eps: must be positive", file);
    if (!(c->rope_theta > 0)) return err_set("%s: rope_theta: must be positive", file);
    if (c->rope_scaling != ROPE_SCALING_NONE && !(c->rope_factor > 0))
        return err_set("%s: rope_scaling.factor: must be positive", file);
    if (c->sliding_window < 0) return err_set("%s: sliding_window: must not be negative", file);
    if (c->sliding_window > 0 && c->n_layers > MODEL_MAX_LAYERS)
        return err_set("%s: num_hidden_layers: %d layers with sliding-window attention (at most "
                       "%d)", file, c->n_layers, MODEL_MAX_LAYERS);
    if (c->rope_scaling == ROPE_SCALING_LLAMA3 &&
        (!(c->rope_low_freq_factor > 0) || !(c->rope_high_freq_factor > c->rope_low_freq_factor) ||
         c->rope_original_max_position <= 0))
        return err_set("%s: rope_scaling: llama3 needs low_freq_factor < high_freq_factor and "
                       "original_max_position_embeddings",
                       file);
    if (c->rotary_dim < 0 || c->rotary_dim > c->head_dim || c->rotary_dim % 2 != 0)
        return err_set("%s: partial_rotary_factor: %d rotary dims of head_dim %d must be even and "
                       "at most head_dim",
                       file, c->rotary_dim, c->head_dim);
    if (c->rope_scaling == ROPE_SCALING_LONGROPE && c->rope_original_max_position <= 0)
        return err_set("%s: original_max_position_embeddings: longrope needs a positive value",
                       file);
    if (c->arch == MODEL_ARCH_GPT2 && c->max_position_embeddings <= 0)
        return err_set("%s: n_positions: must be positive", file);
    return 0;
}

// Fields are length-prefixed so that no two different tensor lists hash the same bytes.
static void hash_u32(sha256_ctx *c, uint32_t v) {
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    sha256_update(c, b, sizeof b);
}

static void hash_u64(sha256_ctx *c, uint64_t v) {
    hash_u32(c, (uint32_t)v);
    hash_u32(c, (uint32_t)(v >> 32));
}

static void hash_str(sha256_ctx *c, const char *s) {
    size_t n = strlen(s);
    hash_u32(c, (uint32_t)n);
    sha256_update(c, s, n);
}

void model_hash_tensor(sha256_ctx *c, const char *name, const char *dtype, int n_dims,
                       const int64_t *dims, const void *data, uint64_t n_bytes) {
    hash_str(c, name);
    hash_str(c, dtype);
    hash_u32(c, (uint32_t)n_dims);
    for (int d = 0; d < n_dims; d++) hash_u64(c, (uint64_t)dims[d]);
    hash_u64(c, n_bytes);
    sha256_update(c, data, (size_t)n_bytes);
}

void model_fingerprint(const model *m, char hex[65]) {
    // Every weight byte, not a sample: two bases that differ anywhere must not compare equal
    // on resume. Hashing the bytes as stored (quantized blocks, F16, ...) rather than the fp32
    // copy keeps the fingerprint a property of the file, whatever type the weights are later
    // held in, and costs one pass at SHA-NI speed over bytes the loader has just read.
    sha256_ctx c;
    sha256_init(&c);
    const model_config *k = &m->cfg;
    const int32_t shape[] = {(int32_t)k->arch, k->hidden_size, k->intermediate_size, k->n_layers,
                             k->n_heads, k->n_kv_heads, k->head_dim, k->vocab_size,
                             k->tie_word_embeddings, k->attention_bias, (int32_t)k->rope_scaling};
    const float numerics[] = {k->rms_norm_eps, k->rope_theta, k->rope_factor,
                              k->rope_low_freq_factor, k->rope_high_freq_factor};
    sha256_update(&c, shape, sizeof shape);
    sha256_update(&c, numerics, sizeof numerics);
    // The fields of the later architectures, hashed only for them so that the fingerprints of
    // llama, mistral and qwen2 bases (and the runs that recorded them) stay what they were.
    if (k->arch == MODEL_ARCH_QWEN3 || k->arch == MODEL_ARCH_GEMMA3) {
        const int32_t more[] = {k->qk_norm, k->post_norms, k->gelu_mlp, k->out_bias,
                                k->sliding_window};
        const float morenum[] = {k->embed_scale, k->q_scale, k->final_softcap,
                                 k->rope_local_theta};
        sha256_update(&c, more, sizeof more);
        sha256_update(&c, morenum, sizeof morenum);
        if (k->sliding_window > 0) sha256_update(&c, k->sliding_layer, (size_t)k->n_layers);
    }
    if (k->arch == MODEL_ARCH_PHI3 || k->arch == MODEL_ARCH_GPT2) {
        const int32_t more[] = {k->rotary_dim, k->rope_original_max_position,
                                k->attn_scale_inverse_layer, k->max_position_embeddings};
        sha256_update(&c, more, sizeof more);
        sha256_update(&c, &k->rope_attention_factor, sizeof k->rope_attention_factor);
        sha256_update(&c, k->rope_short_factor, sizeof k->rope_short_factor);
        sha256_update(&c, k->rope_long_factor, sizeof k->rope_long_factor);
    }
    if (m->has_stored_sha256)
        sha256_update(&c, m->stored_sha256, sizeof m->stored_sha256);
    else
        sha256_update(&c, m->arena, m->n_params * sizeof(float));
    uint8_t digest[32];
    sha256_final(&c, digest);
    sha256_digest_to_hex(digest, hex);
}
