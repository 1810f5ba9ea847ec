// GGUF files (llama.cpp): the config from `<arch>.*` metadata, the weight matrices kept as
// stored in the read-only mapping of the file (norms and biases converted to fp32), and
// llama.cpp's Q/K row permutation undone for `llama` so the math is HF's rotate_half: the
// Q/K matrices are copied once, whole rows in their stored type, into HF order.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/error.h"
#include "formats/gguf.h"
#include "model/arch.h"
#include "model/model_load.h"

static int arch_int(const gguf_file *f, const char *arch, const char *key, int required, int def,
                    int *out) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    if (!gguf_find(f, k)) {
        if (required) return err_set("%s: %s: missing metadata key", f->path, k);
        *out = def;
        return 0;
    }
    int64_t v;
    if (gguf_get_int(f, k, &v) != 0) return -1;
    if (v < 0 || v > 2147483647) return err_set("%s: %s: %lld out of range", f->path, k, (long long)v);
    *out = (int)v;
    return 0;
}

static int arch_float(const gguf_file *f, const char *arch, const char *key, int required,
                      float def, float *out) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    if (!gguf_find(f, k)) {
        if (required) return err_set("%s: %s: missing metadata key", f->path, k);
        *out = def;
        return 0;
    }
    double v;
    if (gguf_get_float(f, k, &v) != 0) return -1;
    *out = (float)v;
    return 0;
}

static int optional_token_id(const gguf_file *f, const char *key, int *out) {
    *out = -1;
    if (!gguf_find(f, key)) return 0;
    int64_t v;
    if (gguf_get_int(f, key, &v) != 0) return -1;
    if (v < 0 || v > 2147483647) return err_set("%s: %s: %lld out of range", f->path, key, (long long)v);
    *out = (int)v;
    return 0;
}

static int parse_rope_scaling(const gguf_file *f, const char *arch, model_config *c) {
    char k[128];
    c->rope_scaling = ROPE_SCALING_NONE;
    snprintf(k, sizeof k, "%s.rope.scaling.type", arch);
    char type[32] = "none";
    if (gguf_find(f, k) && gguf_get_cstr(f, k, type, sizeof type) != 0) return -1;
    if (!strcmp(type, "linear")) {
        c->rope_scaling = ROPE_SCALING_LINEAR;
        return arch_float(f, arch, "rope.scaling.factor", 1, 0, &c->rope_factor);
    }
    if (strcmp(type, "none"))
        return err_set("%s: %s: unsupported rope scaling '%s' (supported: none, linear)", f->path,
                       k, type);
    // Older files carry linear scaling as rope.scale_linear.
    float scale;
    if (arch_float(f, arch, "rope.scale_linear", 0, 1.0f, &scale) != 0) return -1;
    if (scale != 1.0f) {
        c->rope_scaling = ROPE_SCALING_LINEAR;
        c->rope_factor = scale;
    }
    // Llama 3.1+ files store per-frequency factors as a tensor instead of the parameters.
    if (gguf_find_tensor(f, "rope_freqs.weight"))
        return err_set("%s: rope_freqs.weight: per-frequency rope factors (llama3 rope scaling) "
                       "are unsupported in GGUF; load the Hugging Face directory instead",
                       f->path);
    return 0;
}

// A rope factor tensor of phi3 (F32 [R/2]) into out.
static int rope_factor_tensor(const gguf_file *f, const char *name, int n, float *out) {
    const gguf_tensor *t = gguf_find_tensor(f, name);
    if (!t) return err_set("%s: %s: missing tensor (longrope needs both factor tensors)", f->path,
                           name);
    if (t->n_dims != 1 || t->ne[0] != n)
        return err_set("%s: %s: expected %d factors (rope.dimension_count / 2)", f->path, name, n);
    return gguf_tensor_to_f32(f, t, out);
}

// phi3 as llama.cpp's convert writes it: partial rotary in rope.dimension_count, LongRoPE as the
// rope_factors_long/short tensors with rope.scaling.original_context_length and
// rope.scaling.attn_factor (transformers' default from the lengths when absent), and
// attention.sliding_window (0: none).
static int phi3_gguf_config(const gguf_file *f, model_config *c, int rope_dims) {
    const char *arch = "phi3";
    c->rotary_dim = rope_dims;
    int window;
    if (arch_int(f, arch, "attention.sliding_window", 0, 0, &window) != 0) return -1;
    if (window > 0 && window < c->max_position_embeddings) c->max_position_embeddings = window;
    if (!gguf_find_tensor(f, "rope_factors_long.weight")) return 0;
    c->rope_scaling = ROPE_SCALING_LONGROPE;
    if (arch_int(f, arch, "rope.scaling.original_context_length", 1, 0,
                 &c->rope_original_max_position) != 0 ||
        rope_dims / 2 > MODEL_MAX_ROPE_FACTORS ||
        rope_factor_tensor(f, "rope_factors_long.weight", rope_dims / 2, c->rope_long_factor) != 0 ||
        rope_factor_tensor(f, "rope_factors_short.weight", rope_dims / 2, c->rope_short_factor) != 0)
        return rope_dims / 2 > MODEL_MAX_ROPE_FACTORS
                   ? err_set("%s: phi3.rope.dimension_count: %d exceeds the supported %d", f->path,
                             rope_dims, 2 * MODEL_MAX_ROPE_FACTORS)
                   : -1;
    if (c->rope_original_max_position <= 0)
        return err_set("%s: phi3.rope.scaling.original_context_length: must be positive", f->path);
    double s = (double)c->max_position_embeddings / c->rope_original_max_position;
    c->rope_factor = (float)s;
    float def = s <= 1.0 ? 1.0f : (float)sqrt(1.0 + log(s) / log((double)c->rope_original_max_position));
    return arch_float(f, arch, "rope.scaling.attn_factor", 0, def, &c->rope_attention_factor);
}

// gpt2: LayerNorm epsilon under attention.layer_norm_epsilon; the MLP width from ffn_up (the
// convert writes feed_forward_length = 4 * n_embd whatever n_inner is).
static int gpt2_gguf_config(const gguf_file *f, model_config *c) {
    if (arch_float(f, "gpt2", "attention.layer_norm_epsilon", 1, 0, &c->rms_norm_eps) != 0)
        return -1;
    const gguf_tensor *up = gguf_find_tensor(f, "blk.0.ffn_up.weight");
    if (!up || up->n_dims != 2 || up->ne[1] > 2147483647)
        return err_set("%s: blk.0.ffn_up.weight: missing or not a matrix", f->path);
    c->intermediate_size = (int)up->ne[1];
    c->attention_bias = 1;
    c->out_bias = 1;  // attn_output.bias, in bo
    return 0;
}

static int parse_config(const gguf_file *f, model_config *c) {
    memset(c, 0, sizeof *c);
    char arch[32];
    if (gguf_get_cstr(f, "general.architecture", arch, sizeof arch) != 0) return -1;
    if (!strcmp(arch, "phi3"))
        c->arch = MODEL_ARCH_PHI3;
    else if (!strcmp(arch, "gpt2"))
        c->arch = MODEL_ARCH_GPT2;
    else if (!strcmp(arch, "llama"))
        c->arch = MODEL_ARCH_LLAMA;
    else if (!strcmp(arch, "qwen2"))
        c->arch = MODEL_ARCH_QWEN2;
    else if (!strcmp(arch, "qwen3"))
        c->arch = MODEL_ARCH_QWEN3;
    else if (!strcmp(arch, "gemma3"))
        c->arch = MODEL_ARCH_GEMMA3;
    else
        return err_set("%s: general.architecture: unsupported architecture '%s' (supported: "
                       "llama, qwen2, qwen3, gemma3, phi3, gpt2)",
                       f->path, arch);
    const int gpt2 = c->arch == MODEL_ARCH_GPT2;
    if (arch_int(f, arch, "embedding_length", 1, 0, &c->hidden_size) != 0 ||
        arch_int(f, arch, "feed_forward_length", 1, 0, &c->intermediate_size) != 0 ||
        arch_int(f, arch, "block_count", 1, 0, &c->n_layers) != 0 ||
        arch_int(f, arch, "attention.head_count", 1, 0, &c->n_heads) != 0 ||
        arch_int(f, arch, "attention.head_count_kv", 0, c->n_heads, &c->n_kv_heads) != 0 ||
        arch_int(f, arch, "context_length", 0, 2048, &c->max_position_embeddings) != 0 ||
        (gpt2 ? gpt2_gguf_config(f, c)
              : arch_float(f, arch, "attention.layer_norm_rms_epsilon", 1, 0, &c->rms_norm_eps)) != 0 ||
        arch_float(f, arch, "rope.freq_base", 0, 10000.0f, &c->rope_theta) != 0)
        return -1;
    if (c->n_heads <= 0)
        return err_set("%s: %s.attention.head_count: must be positive", f->path, arch);
    int value_len, rope_dims;
    if (arch_int(f, arch, "attention.key_length", 0, c->hidden_size / c->n_heads, &c->head_dim) != 0 ||
        arch_int(f, arch, "attention.value_length", 0, c->head_dim, &value_len) != 0 ||
        arch_int(f, arch, "rope.dimension_count", 0, c->head_dim, &rope_dims) != 0)
        return -1;
    if (value_len != c->head_dim)
        return err_set("%s: %s.attention.value_length: %d differs from key_length %d (unsupported)",
                       f->path, arch, value_len, c->head_dim);
    if (c->arch == MODEL_ARCH_PHI3 && phi3_gguf_config(f, c, rope_dims) != 0) return -1;
    if (rope_dims != c->head_dim && c->arch != MODEL_ARCH_PHI3)
        return err_set("%s: %s.rope.dimension_count: partial rotary (%d of %d dims) is unsupported",
                       f->path, arch, rope_dims, c->head_dim);
    if (c->rope_scaling != ROPE_SCALING_LONGROPE && parse_rope_scaling(f, arch, c) != 0) return -1;
    const gguf_tensor *embd = gguf_find_tensor(f, "token_embd.weight");
    if (!embd) return err_set("%s: token_embd.weight: missing tensor", f->path);
    if (embd->n_dims != 2 || embd->ne[1] > 2147483647)
        return err_set("%s: token_embd.weight: expected 2 dimensions", f->path);
    c->vocab_size = (int)embd->ne[1];
    c->tie_word_embeddings = gguf_find_tensor(f, "output.weight") == NULL;
    c->attention_bias = c->arch == MODEL_ARCH_QWEN2 || gpt2 || gguf_find_tensor(f, "blk.0.attn_q.bias");
    if (optional_token_id(f, "tokenizer.ggml.bos_token_id", &c->bos_token_id) != 0 ||
        optional_token_id(f, "tokenizer.ggml.eos_token_id", &c->eos_token_ids[0]) != 0)
        return -1;
    c->n_eos = c->eos_token_ids[0] >= 0;
    if (!c->n_eos) c->eos_token_ids[0] = 0;
    if (arch_gguf_config(f, c) != 0) return -1;
    return model_config_validate(c, f->path);
}

int model_config_load_gguf(model_config *cfg, const char *path) {
    gguf_file f;
    if (gguf_open(&f, path) != 0) return -1;
    int rc = parse_config(&f, cfg);
    gguf_close(&f);
    return rc;
}

// The mapped pages of a tensor that has been copied are never read again: drop them from the
// process (the page cache keeps them), so the copy does not count twice in its memory.
static void release_pages(const void *data, size_t n) {
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = ((uintptr_t)data + page - 1) / page * page, b = ((uintptr_t)data + n) / page * page;
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}

static int load_slot(model *m, const gguf_file *f, const weight_slot *s, int unpermute,
                     float *scratch, dtype_tally *tally, sha256_ctx *hash) {
    const gguf_tensor *t = gguf_find_tensor(f, s->gguf_name);
    if (!t) return err_set("%s: %s: missing tensor", f->path, s->gguf_name);
    // ggml lists dimensions innermost first: a [rows, cols] matrix has ne = [cols, rows].
    int want_dims = s->cols ? 2 : 1;
    int64_t want0 = s->cols ? s->cols : s->rows, want1 = s->cols ? s->rows : 1;
    if (t->n_dims != want_dims || t->ne[0] != want0 || t->ne[1] != want1) {
        if (s->cols)
            return err_set("%s: %s: ne [%lld, %lld], expected [%lld, %lld]", f->path, t->name,
                           (long long)t->ne[0], (long long)t->ne[1], (long long)want0,
                           (long long)want1);
        return err_set("%s: %s: ne [%lld], expected [%lld]", f->path, t->name,
                       (long long)t->ne[0], (long long)want0);
    }
    dtype_tally_add(tally, ggml_type_name(t->type));
    model_hash_tensor(hash, t->name, ggml_type_name(t->type), t->n_dims, t->ne, t->data,
                      t->n_bytes);
    const int permute = unpermute && s->qk_heads;
    const int head_dim = s->qk_heads ? (int)(s->rows / s->qk_heads) : 0;
    if (s->mat) {
        if (weight_mat_init(s->mat, t->type, t->data, s->rows, s->cols, f->path, t->name) != 0)
            return -1;
        if (!permute) {
            m->weight_bytes_mapped += weight_mat_bytes(s->mat);
            return 0;
        }
        // A row permutation moves whole rows, so it works on quantized rows as stored. Copying
        // once costs the Q and K bytes (about a tenth of a layer) and keeps every product on
        // contiguous rows; an index read on every access would save the copy but not the time.
        void *rows = model_own(m, weight_mat_bytes(s->mat));
        if (!rows) return -1;
        qk_rows_unpermute_bytes(rows, t->data, s->qk_heads, head_dim, s->mat->row_bytes);
        s->mat->data = rows;
        m->weight_bytes_owned += weight_mat_bytes(s->mat);
        release_pages(t->data, t->n_bytes);
        return 0;
    }
    if (!permute) return gguf_tensor_to_f32(f, t, s->dst);
    if (gguf_tensor_to_f32(f, t, scratch) != 0) return -1;
    qk_rows_unpermute(s->dst, scratch, s->qk_heads, head_dim, 1);
    return 0;
}

int model_load_gguf(model *m, const char *path) {
    gguf_file f;
    if (gguf_open(&f, path) != 0) return -1;
    model_config cfg;
    weight_slot *slots = NULL;
    float *scratch = NULL;
    int n = 0, rc = -1;
    if (parse_config(&f, &cfg) != 0 || model_alloc_stored(m, &cfg) != 0 ||
        weight_slots_list(m, &slots, &n) != 0)
        goto done;
    size_t q_rows = (size_t)cfg.n_heads * cfg.head_dim;
    if (!(scratch = xmalloc_or_err(q_rows * sizeof(float), path)))
        goto done;
    int unpermute = cfg.arch == MODEL_ARCH_LLAMA;
    dtype_tally tally = {0};
    sha256_ctx hash;
    sha256_init(&hash);
    for (int i = 0; i < n; i++)
        if (load_slot(m, &f, &slots[i], unpermute, scratch, &tally, &hash) != 0) goto done;
    if (cfg.tie_word_embeddings) m->lm_head = m->embed;
    arch_fused_split(m);
    sha256_final(&hash, m->stored_sha256);
    m->has_stored_sha256 = 1;
    snprintf(m->source_format, sizeof m->source_format, "gguf");
    dtype_tally_format(&tally, m->source_dtypes, sizeof m->source_dtypes);
    char tok[24];
    if (!gguf_find(&f, "tokenizer.ggml.model"))
        snprintf(m->tokenizer_kind, sizeof m->tokenizer_kind, "none");
    else if (gguf_get_cstr(&f, "tokenizer.ggml.model", tok, sizeof tok) != 0)
        goto done;
    else
        snprintf(m->tokenizer_kind, sizeof m->tokenizer_kind, "%s (gguf)", tok);
    // The matrices point into the mapping: the model keeps it open for its life.
    rc = model_keep_map(m, &f.map);
done:
    free(scratch);
    free(slots);
    gguf_close(&f);
    return rc;
}
