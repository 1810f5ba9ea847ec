#include "model/model.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/sha256.h"
#include "model/model_load.h"

static size_t layer_param_count(const model_config *c) {
    size_t C = (size_t)c->hidden_size, F = (size_t)c->intermediate_size;
    size_t q = (size_t)c->n_heads * c->head_dim, kv = (size_t)c->n_kv_heads * c->head_dim;
    size_t n = 2 * C + q * C + 2 * kv * C + C * q + 3 * F * C;
    if (c->attention_bias) n += q + 2 * kv;
    if (c->arch == MODEL_ARCH_GPT2) n += 4 * C + F - F * C;  // biases; no gate projection
    return n;
}

int model_alloc(model *m, const model_config *cfg) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    size_t C = (size_t)cfg->hidden_size, V = (size_t)cfg->vocab_size;
    size_t per_layer = layer_param_count(cfg);
    size_t n = V * C + C + (size_t)cfg->n_layers * per_layer;
    if (!cfg->tie_word_embeddings) n += V * C;
    const int gpt2 = cfg->arch == MODEL_ARCH_GPT2;
    if (gpt2) n += C + (size_t)cfg->max_position_embeddings * C;
    m->arena = malloc(n * sizeof(float));
    m->layers = calloc((size_t)cfg->n_layers, sizeof(layer_weights));
    if (!m->arena || !m->layers) {
        free(m->arena);
        free(m->layers);
        memset(m, 0, sizeof *m);
        return err_set("model: out of memory for %zu parameters", n);
    }
    m->n_params = n;
    float *p = m->arena;
    m->embed = p, p += V * C;
    m->final_norm = p, p += C;
    if (cfg->tie_word_embeddings) {
        m->lm_head = m->embed;
    } else {
        m->lm_head = p, p += V * C;
    }
    if (gpt2) {
        m->final_norm_b = p, p += C;
        m->pos_embed = p, p += (size_t)cfg->max_position_embeddings * C;
    }
    size_t F = (size_t)cfg->intermediate_size;
    size_t q = (size_t)cfg->n_heads * cfg->head_dim, kv = (size_t)cfg->n_kv_heads * cfg->head_dim;
    for (int l = 0; l < cfg->n_layers; l++) {
        layer_weights *w = &m->layers[l];
        w->attn_norm = p, p += C;
        // wq, wk, wv adjacent (and bq, bk, bv): phi3's qkv_proj and gpt2's c_attn as one matrix.
        w->wq = p, p += q * C;
        w->wk = p, p += kv * C;
        w->wv = p, p += kv * C;
        if (cfg->attention_bias) {
            w->bq = p, p += q;
            w->bk = p, p += kv;
            w->bv = p, p += kv;
        }
        w->wo = p, p += C * q;
        w->mlp_norm = p, p += C;
        // phi3's gate_up_proj is [gate; up]: w_gate and w_up adjacent hold it as stored.
        if (!gpt2) w->w_gate = p, p += F * C;
        w->w_up = p, p += F * C;
        w->w_down = p, p += C * F;
        if (gpt2) {
            w->attn_norm_b = p, p += C;
            w->bo = p, p += C;
            w->mlp_norm_b = p, p += C;
            w->b_up = p, p += F;
            w->b_down = p, p += C;
        }
    }
    return 0;
}

void model_free(model *m) {
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
    // Only the architectures that have them hash these, so earlier fingerprints stay valid.
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
