// Hugging Face model directories: config.json and model.safetensors (or shards listed in
// model.safetensors.index.json), converted to the fp32 model.
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileio.h"
#include "common/json_number.h"
#include "common/strbuf.h"
#include "formats/gguf.h"
#include "formats/halfconv.h"
#include "formats/safetensors.h"
#include "model/arch.h"
#include "model/model_load.h"
#include "tokenizer/tokenizer.h"

// ---- config.json ----

// A JSON key that is absent or null counts as missing.
static const cJSON *field(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

static int json_int(const cJSON *v, const char *file, const char *key, int *out) {
    long long n;
    if (!json_whole(v, -2147483647.0, 2147483647.0, &n))
        return err_set("%s: %s: expected an integer", file, key);
    *out = (int)n;
    return 0;
}

// An integer field; when absent, `def` (or an error when required).
static int get_int(const cJSON *obj, const char *file, const char *key, int required, int def,
                   int *out) {
    const cJSON *v = field(obj, key);
    if (!v) {
        if (required) return err_set("%s: %s: missing", file, key);
        *out = def;
        return 0;
    }
    return json_int(v, file, key, out);
}

static int get_float(const cJSON *obj, const char *file, const char *key, int required,
                     float def, float *out) {
    const cJSON *v = field(obj, key);
    if (!v) {
        if (required) return err_set("%s: %s: missing", file, key);
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(v)) return err_set("%s: %s: expected a number", file, key);
    *out = (float)v->valuedouble;
    return 0;
}

static int get_bool(const cJSON *obj, const char *file, const char *key, int def, int *out) {
    const cJSON *v = field(obj, key);
    if (!v) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsBool(v)) return err_set("%s: %s: expected true or false", file, key);
    *out = cJSON_IsTrue(v);
    return 0;
}

static int parse_arch(const cJSON *root, const char *file, model_arch *arch) {
    static const struct {
        const char *model_type, *class_name;
        model_arch arch;
    } ARCHS[] = {
        {"llama", "LlamaForCausalLM", MODEL_ARCH_LLAMA},
        {"mistral", "MistralForCausalLM", MODEL_ARCH_MISTRAL},
        {"qwen2", "Qwen2ForCausalLM", MODEL_ARCH_QWEN2},
        {"qwen3", "Qwen3ForCausalLM", MODEL_ARCH_QWEN3},
        {"gemma3_text", "Gemma3ForCausalLM", MODEL_ARCH_GEMMA3},
        {"gemma3", "Gemma3ForConditionalGeneration", MODEL_ARCH_GEMMA3},
        {"phi3", "Phi3ForCausalLM", MODEL_ARCH_PHI3},
        {"gpt2", "GPT2LMHeadModel", MODEL_ARCH_GPT2},
    };
    const cJSON *mt = field(root, "model_type");
    const cJSON *archs = field(root, "architectures");
    const char *key = "model_type", *name = NULL;
    if (mt) {
        if (!cJSON_IsString(mt)) return err_set("%s: model_type: expected a string", file);
        name = mt->valuestring;
    } else if (cJSON_IsArray(archs) && cJSON_IsString(archs->child)) {
        key = "architectures";
        name = archs->child->valuestring;
    } else {
        return err_set("%s: model_type: missing", file);
    }
    for (size_t i = 0; i < sizeof ARCHS / sizeof ARCHS[0]; i++)
        if (!strcmp(name, mt ? ARCHS[i].model_type : ARCHS[i].class_name)) {
            *arch = ARCHS[i].arch;
            return 0;
        }
    return err_set("%s: %s: unsupported architecture '%s' (supported: llama, mistral, qwen2, "
                   "qwen3, gemma3_text, gemma3, phi3, gpt2)",
                   file, key, name);
}

static int rope_float(const cJSON *r, const char *file, const char *key, const char *sub,
                      float *out) {
    const cJSON *v = field(r, sub);
    if (!cJSON_IsNumber(v)) return err_set("%s: %s.%s: missing or not a number", file, key, sub);
    *out = (float)v->valuedouble;
    return 0;
}

// A list of exactly `n` numbers (longrope's short_factor / long_factor).
static int rope_factor_list(const cJSON *r, const char *file, const char *key, const char *sub,
                            int n, float *out) {
    const cJSON *v = field(r, sub);
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != n)
        return err_set("%s: %s.%s: expected a list of %d numbers (rotary dims / 2)", file, key,
                       sub, n);
    int i = 0;
    for (const cJSON *e = v->child; e; e = e->next, i++) {
        if (!cJSON_IsNumber(e)) return err_set("%s: %s.%s: expected numbers", file, key, sub);
        out[i] = (float)e->valuedouble;
    }
    return 0;
}

// Phi-3's LongRoPE, as transformers' _compute_longrope_parameters: the pretraining length is
// the top-level original_max_position_embeddings when present (Phi-3 keeps it there), else
// the one in the rope object; without attention_factor, sqrt(1 + ln(s) / ln(original)) with
// s = factor or max_position_embeddings / original (1 when s <= 1).
static int parse_longrope(const cJSON *root, const cJSON *r, const char *file, const char *key,
                          model_config *c) {
    c->rope_scaling = ROPE_SCALING_LONGROPE;
    int orig = 0;
    const cJSON *o = field(root, "original_max_position_embeddings");
    if (o) {
        if (json_int(o, file, "original_max_position_embeddings", &orig) != 0) return -1;
    } else if ((o = field(r, "original_max_position_embeddings"))) {
        if (json_int(o, file, "rope_scaling.original_max_position_embeddings", &orig) != 0)
            return -1;
    } else {
        orig = c->max_position_embeddings;
    }
    if (orig <= 0) return err_set("%s: original_max_position_embeddings: must be positive", file);
    c->rope_original_max_position = orig;
    int R = c->rotary_dim ? c->rotary_dim : c->head_dim;
    if (R / 2 > MODEL_MAX_ROPE_FACTORS)
        return err_set("%s: %s: %d rotary dims exceed the supported %d", file, key, R,
                       2 * MODEL_MAX_ROPE_FACTORS);
    if (rope_factor_list(r, file, key, "short_factor", R / 2, c->rope_short_factor) != 0 ||
        rope_factor_list(r, file, key, "long_factor", R / 2, c->rope_long_factor) != 0)
        return -1;
    double s = (double)c->max_position_embeddings / orig;
    const cJSON *f = field(r, "factor");
    if (f) {
        if (!cJSON_IsNumber(f)) return err_set("%s: %s.factor: expected a number", file, key);
        s = f->valuedouble;
    }
    c->rope_factor = (float)s;
    const cJSON *af = field(r, "attention_factor");
    if (af) {
        if (!cJSON_IsNumber(af))
            return err_set("%s: %s.attention_factor: expected a number", file, key);
        c->rope_attention_factor = (float)af->valuedouble;
    } else {
        c->rope_attention_factor = s <= 1.0 ? 1.0f : (float)sqrt(1.0 + log(s) / log((double)orig));
    }
    return 0;
}

// partial_rotary_factor, top level (transformers v4) or in rope_parameters (v5): the rotated
// dims are int(head_dim * factor), as transformers truncates.
static int parse_partial_rotary(const cJSON *root, const char *file, model_config *c) {
    const cJSON *r = field(root, "rope_parameters");
    const cJSON *v = r ? field(r, "partial_rotary_factor") : NULL;
    if (!v) v = field(root, "partial_rotary_factor");
    if (!v) return 0;
    if (!cJSON_IsNumber(v) || !(v->valuedouble > 0.0 && v->valuedouble <= 1.0))
        return err_set("%s: partial_rotary_factor: expected a number in (0, 1]", file);
    c->rotary_dim = (int)(c->head_dim * v->valuedouble);
    return 0;
}

// rope_scaling (transformers v4) or rope_parameters (v5, which also carries rope_theta).
static int parse_rope(const cJSON *root, const char *file, model_config *c) {
    if (get_float(root, file, "rope_theta", 0, 10000.0f, &c->rope_theta) != 0) return -1;
    const char *key = "rope_parameters";
    const cJSON *r = field(root, key);
    if (!r) {
        key = "rope_scaling";
        r = field(root, key);
    }
    c->rope_scaling = ROPE_SCALING_NONE;
    if (!r) return 0;
    if (!cJSON_IsObject(r)) return err_set("%s: %s: expected an object or null", file, key);
    if (field(r, "rope_theta") && rope_float(r, file, key, "rope_theta", &c->rope_theta) != 0)
        return -1;
    const cJSON *type = field(r, "rope_type");
    if (!type) type = field(r, "type");
    if (!type) {
        // v5 nests parameters per attention type for some models; a flat object without a
        // type is the default rope.
        for (const cJSON *e = r->child; e; e = e->next)
            if (cJSON_IsObject(e))
                return err_set("%s: %s: per-layer-type rope parameters ('%s') are unsupported",
                               file, key, e->string);
        return 0;
    }
    if (!cJSON_IsString(type)) return err_set("%s: %s.rope_type: expected a string", file, key);
    const char *t = type->valuestring;
    if (!strcmp(t, "default")) return 0;
    if (!strcmp(t, "linear")) {
        c->rope_scaling = ROPE_SCALING_LINEAR;
        return rope_float(r, file, key, "factor", &c->rope_factor);
    }
    if (!strcmp(t, "llama3")) {
        c->rope_scaling = ROPE_SCALING_LLAMA3;
        const cJSON *orig = field(r, "original_max_position_embeddings");
        if (rope_float(r, file, key, "factor", &c->rope_factor) != 0 ||
            rope_float(r, file, key, "low_freq_factor", &c->rope_low_freq_factor) != 0 ||
            rope_float(r, file, key, "high_freq_factor", &c->rope_high_freq_factor) != 0)
            return -1;
        if (!orig) return err_set("%s: %s.original_max_position_embeddings: missing", file, key);
        char name[80];
        snprintf(name, sizeof name, "%s.original_max_position_embeddings", key);
        return json_int(orig, file, name, &c->rope_original_max_position);
    }
    // "su" is the name early Phi-3 128k configs gave longrope.
    if (!strcmp(t, "longrope") || !strcmp(t, "su")) return parse_longrope(root, r, file, key, c);
    return err_set("%s: %s: unsupported rope type '%s' (supported: default, linear, llama3%s)",
                   file, key, t, c->arch == MODEL_ARCH_PHI3 ? ", longrope" : "");
}

static int parse_eos(const cJSON *root, const char *file, model_config *c) {
    const cJSON *v = field(root, "eos_token_id");
    c->n_eos = 0;
    if (!v) return 0;
    if (!cJSON_IsArray(v)) {
        if (json_int(v, file, "eos_token_id", &c->eos_token_ids[0]) != 0) return -1;
        c->n_eos = 1;
        return 0;
    }
    for (const cJSON *e = v->child; e; e = e->next) {
        if (c->n_eos == MODEL_MAX_EOS)
            return err_set("%s: eos_token_id: more than %d ids", file, MODEL_MAX_EOS);
        if (json_int(e, file, "eos_token_id", &c->eos_token_ids[c->n_eos++]) != 0) return -1;
    }
    return 0;
}

// Fields that would change the math in ways this implementation does not follow.
static int check_unsupported(const cJSON *root, const char *file, model_arch arch) {
    int flag;
    if (field(root, "quantization_config"))
        return err_set("%s: quantization_config: quantized checkpoints are unsupported", file);
    if (get_bool(root, file, "mlp_bias", 0, &flag) != 0) return -1;
    if (flag) return err_set("%s: mlp_bias: true is unsupported", file);
    const cJSON *act = field(root, "hidden_act");
    if (act && (!cJSON_IsString(act) || strcmp(act->valuestring, "silu")))
        return err_set("%s: hidden_act: unsupported activation '%s' (supported: silu)", file,
                       cJSON_IsString(act) ? act->valuestring : "?");
    if (arch == MODEL_ARCH_QWEN2) {
        if (get_bool(root, file, "use_sliding_window", 0, &flag) != 0) return -1;
        if (flag) return err_set("%s: use_sliding_window: true is unsupported", file);
    }
    return 0;
}

// GPT-2's own keys (n_embd, n_layer, ...). The Conv1D MLP width is n_inner or 4 * n_embd;
// scale_attn_by_inverse_layer_idx (BioMedLM) is followed; reorder_and_upcast_attn only
// changes the order of fp32 operations, which medtune runs in fp32 anyway.
static int gpt2_config_from_hf(const cJSON *root, const char *file, model_config *c) {
    if (field(root, "quantization_config"))
        return err_set("%s: quantization_config: quantized checkpoints are unsupported", file);
    const cJSON *act = field(root, "activation_function");
    if (act && (!cJSON_IsString(act) || (strcmp(act->valuestring, "gelu_new") &&
                                         strcmp(act->valuestring, "gelu_pytorch_tanh"))))
        return err_set("%s: activation_function: unsupported '%s' (supported: gelu_new, "
                       "gelu_pytorch_tanh)",
                       file, cJSON_IsString(act) ? act->valuestring : "?");
    int scale_weights, add_cross;
    if (get_int(root, file, "n_embd", 1, 0, &c->hidden_size) != 0 ||
        get_int(root, file, "n_layer", 1, 0, &c->n_layers) != 0 ||
        get_int(root, file, "n_head", 1, 0, &c->n_heads) != 0 ||
        get_int(root, file, "vocab_size", 1, 0, &c->vocab_size) != 0 ||
        get_int(root, file, "n_positions", 0, 1024, &c->max_position_embeddings) != 0 ||
        get_float(root, file, "layer_norm_epsilon", 0, 1e-5f, &c->rms_norm_eps) != 0 ||
        get_bool(root, file, "tie_word_embeddings", 1, &c->tie_word_embeddings) != 0 ||
        get_bool(root, file, "scale_attn_weights", 1, &scale_weights) != 0 ||
        get_bool(root, file, "scale_attn_by_inverse_layer_idx", 0,
                 &c->attn_scale_inverse_layer) != 0 ||
        get_bool(root, file, "add_cross_attention", 0, &add_cross) != 0 ||
        get_int(root, file, "bos_token_id", 0, -1, &c->bos_token_id) != 0 ||
        parse_eos(root, file, c) != 0)
        return -1;
    if (!scale_weights)
        return err_set("%s: scale_attn_weights: false is unsupported (scores are scaled by "
                       "1/sqrt(head_dim))",
                       file);
    if (add_cross) return err_set("%s: add_cross_attention: true is unsupported", file);
    if (c->n_heads <= 0) return err_set("%s: n_head: must be positive", file);
    if (get_int(root, file, "n_inner", 0, 4 * c->hidden_size, &c->intermediate_size) != 0)
        return -1;
    if (!c->tie_word_embeddings)
        return err_set("%s: tie_word_embeddings: false is unsupported for gpt2 (the head is wte)",
                       file);
    c->n_kv_heads = c->n_heads;
    c->head_dim = c->hidden_size / c->n_heads;
    c->attention_bias = 1;
    c->out_bias = 1;  // c_proj's bias, in bo
    c->rope_theta = 10000.0f;  // unused: positions are learned
    return model_config_validate(c, file);
}

int model_config_from_hf_json(model_config *c, const char *json, size_t len, const char *file) {
    memset(c, 0, sizeof *c);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!root) return err_set("%s: not valid JSON (near byte %ld)", file, end ? (long)(end - json) : 0L);
    int rc = -1;
    if (!cJSON_IsObject(root)) {
        err_set("%s: not a JSON object", file);
        goto done;
    }
    if (parse_arch(root, file, &c->arch) != 0) goto done;
    if (c->arch == MODEL_ARCH_GEMMA3) {  // its own defaults and keys (model/arch.c)
        rc = arch_gemma3_config(c, root, file);
        goto done;
    }
    if (c->arch == MODEL_ARCH_GPT2) {
        rc = gpt2_config_from_hf(root, file, c);
        goto done;
    }
    if (check_unsupported(root, file, c->arch) != 0) goto done;
    if (get_int(root, file, "hidden_size", 1, 0, &c->hidden_size) != 0 ||
        get_int(root, file, "intermediate_size", 1, 0, &c->intermediate_size) != 0 ||
        get_int(root, file, "num_hidden_layers", 1, 0, &c->n_layers) != 0 ||
        get_int(root, file, "num_attention_heads", 1, 0, &c->n_heads) != 0 ||
        get_int(root, file, "num_key_value_heads", 0, c->n_heads, &c->n_kv_heads) != 0 ||
        get_int(root, file, "vocab_size", 1, 0, &c->vocab_size) != 0 ||
        get_int(root, file, "max_position_embeddings", 0, 2048, &c->max_position_embeddings) != 0 ||
        get_float(root, file, "rms_norm_eps", 0, 1e-6f, &c->rms_norm_eps) != 0 ||
        get_bool(root, file, "tie_word_embeddings", 0, &c->tie_word_embeddings) != 0 ||
        get_int(root, file, "bos_token_id", 0, -1, &c->bos_token_id) != 0)
        goto done;
    if (c->n_heads <= 0) {
        err_set("%s: num_attention_heads: must be positive", file);
        goto done;
    }
    if (get_int(root, file, "head_dim", 0, c->hidden_size / c->n_heads, &c->head_dim) != 0)
        goto done;
    if (c->arch == MODEL_ARCH_PHI3 && parse_partial_rotary(root, file, c) != 0) goto done;
    if (parse_rope(root, file, c) != 0 || parse_eos(root, file, c) != 0) goto done;
    if (c->arch == MODEL_ARCH_QWEN2)
        c->attention_bias = 1;
    else if (c->arch == MODEL_ARCH_LLAMA &&
             get_bool(root, file, "attention_bias", 0, &c->attention_bias) != 0)
        goto done;
    if (c->arch == MODEL_ARCH_MISTRAL || c->arch == MODEL_ARCH_PHI3) {
        // Sliding-window attention equals full attention within the window; cap the usable
        // context there so longer sequences are refused instead of silently computed wrong.
        int window;
        if (get_int(root, file, "sliding_window", 0, 0, &window) != 0) goto done;
        if (window > 0 && window < c->max_position_embeddings) c->max_position_embeddings = window;
    }
    if (arch_hf_config(c, root, file) != 0) goto done;
    rc = model_config_validate(c, file);
done:
    cJSON_Delete(root);
    return rc;
}

// ---- weights ----

typedef struct {
    st_file *files;
    char **names;  // shard file names (relative to the directory)
    int n;
    size_t cap;  // of both files and names
    cJSON *index;             // model.safetensors.index.json, NULL for a single file
    const cJSON *weight_map;  // inside `index`
    char index_path[4096];
} hf_weights;

static void hf_weights_close(hf_weights *w) {
    for (int i = 0; i < w->n; i++) {
        safetensors_close(&w->files[i]);
        free(w->names[i]);
    }
    free(w->files);
    free(w->names);
    cJSON_Delete(w->index);
    memset(w, 0, sizeof *w);
}

static int hf_weights_add(hf_weights *w, const char *dir, const char *name) {
    for (int i = 0; i < w->n; i++)
        if (!strcmp(w->names[i], name)) return 0;
    if (strchr(name, '/') || !strcmp(name, "..") || !*name)
        return err_set("%s: weight_map: invalid shard file name '%s'", w->index_path, name);
    // files and names grow together: from the same capacity vec_grow gives both the same new one.
    size_t need = (size_t)w->n + 1, cap_files = w->cap, cap_names = w->cap;
    st_file *nf = vec_grow(w->files, &cap_files, need, sizeof *nf);
    if (nf) w->files = nf;
    char **nn = vec_grow(w->names, &cap_names, need, sizeof *nn);
    if (nn) w->names = nn;
    if (!nf || !nn) return err_set("%s: out of memory", dir);
    w->cap = cap_files;
    char path[4096];
    if (path_join(path, sizeof path, dir, name) != 0) return -1;
    if (!(w->names[w->n] = strdup(name))) return err_set("%s: out of memory", dir);
    if (safetensors_open(&w->files[w->n], path) != 0) {
        free(w->names[w->n]);
        return -1;
    }
    w->n++;
    return 0;
}

static int hf_weights_open(hf_weights *w, const char *dir) {
    memset(w, 0, sizeof *w);
    char single[4096];
    if (path_join(single, sizeof single, dir, "model.safetensors") != 0 ||
        path_join(w->index_path, sizeof w->index_path, dir, "model.safetensors.index.json") != 0)
        return -1;
    if (path_exists(single)) return hf_weights_add(w, dir, "model.safetensors");
    if (!path_exists(w->index_path))
        return err_set("%s: no model.safetensors or model.safetensors.index.json", dir);
    char *text;
    size_t len;
    if (file_read_all(w->index_path, &text, &len) != 0) return -1;
    const char *end = NULL;
    w->index = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    long at = end ? (long)(end - text) : 0L;
    free(text);
    if (!w->index) return err_set("%s: not valid JSON (near byte %ld)", w->index_path, at);
    w->weight_map = cJSON_GetObjectItemCaseSensitive(w->index, "weight_map");
    if (!cJSON_IsObject(w->weight_map))
        return err_set("%s: weight_map: missing or not an object", w->index_path);
    for (const cJSON *e = w->weight_map->child; e; e = e->next) {
        if (!cJSON_IsString(e))
            return err_set("%s: weight_map: %s: expected a file name", w->index_path, e->string);
        if (hf_weights_add(w, dir, e->valuestring) != 0) return -1;
    }
    return 0;
}

// The tensor `name` and the file holding it; NULL with an error naming both when missing.
static const st_tensor *hf_weights_find(const hf_weights *w, const char *name,
                                        const st_file **file) {
    if (!w->index) {
        *file = &w->files[0];
        const st_tensor *t = safetensors_find(*file, name);
        if (!t) err_set("%s: %s: missing tensor", (*file)->path, name);
        return t;
    }
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(w->weight_map, name);
    if (!e) {
        err_set("%s: %s: missing tensor (not in weight_map)", w->index_path, name);
        return NULL;
    }
    for (int i = 0; i < w->n; i++)
        if (!strcmp(w->names[i], e->valuestring)) {
            *file = &w->files[i];
            const st_tensor *t = safetensors_find(*file, name);
            if (!t) err_set("%s: %s: missing tensor (weight_map points here)", (*file)->path, name);
            return t;
        }
    err_set("%s: %s: missing tensor", w->index_path, name);
    return NULL;
}

// A tensor saved under another name: safetensors' torch helper drops one of two shared
// tensors and records "dropped": "kept" in __metadata__; tied models may also keep only
// lm_head.weight for the embedding.
static const char *hf_alias(const hf_weights *w, const weight_slot *s, int tied) {
    for (int i = 0; i < w->n; i++) {
        const char *a = safetensors_metadata(&w->files[i], s->hf_name);
        if (a) return a;
    }
    if (tied && !strcmp(s->hf_name, "model.embed_tokens.weight")) return "lm_head.weight";
    // GPT-2 checkpoints saved from GPT2Model (the original gpt2 files) lack the prefix.
    if (!strncmp(s->hf_name, "transformer.", 12)) return s->hf_name + 12;
    return NULL;
}

// Converts a matrix held as stored into `to` (bf16 or q8_0), row by row, into owned memory.
static int convert_matrix(model *m, weight_mat *w, uint32_t to, const char *file,
                          const char *name) {
    const size_t rb = weight_row_bytes(to, w->cols);
    if (!rb)
        return err_set("%s: %s: base_dtype %s needs rows of whole %u-value blocks, not %lld", file,
                       name, ggml_type_name(to), quant_block_size(to), (long long)w->cols);
    uint8_t *dst = model_own(m, rb * (size_t)w->rows);
    float *row = malloc((size_t)w->cols * sizeof *row);
    if (!dst || !row) {
        free(row);
        return err_set("%s: %s: out of memory converting to %s", file, name, ggml_type_name(to));
    }
    for (int64_t r = 0; r < w->rows; r++) {
        weight_rows_to_f32(w, r, 1, row);
        quant_quantize_row(to, row, dst + (size_t)r * rb, w->cols);
    }
    free(row);
    *w = (weight_mat){.type = to, .data = dst, .rows = w->rows, .cols = w->cols, .row_bytes = rb};
    m->weight_bytes_owned += weight_mat_bytes(w);
    return 0;
}

static int load_slot(model *m, const hf_weights *w, const weight_slot *s, int tied,
                     uint32_t convert_to, dtype_tally *tally, sha256_ctx *hash, int multimodal) {
    const st_file *f;
    const st_tensor *t = NULL;
    char alt[160];
    // A multimodal gemma3 file names the text model's weights under language_model.
    for (int k = 0; multimodal && !t && arch_hf_name_variant(alt, sizeof alt, s->hf_name, k); k++)
        if (safetensors_find(&w->files[0], alt) || w->index) t = hf_weights_find(w, alt, &f);
    if (!t) t = hf_weights_find(w, s->hf_name, &f);
    if (!t) {
        const char *alias = hf_alias(w, s, tied);
        char saved[2048];
        snprintf(saved, sizeof saved, "%s", err_msg());
        if (!alias || !(t = hf_weights_find(w, alias, &f))) return err_set("%s", saved);
    }
    int want_dims = s->cols ? 2 : 1;
    int64_t rows = s->hf_transposed ? s->cols : s->rows, cols = s->hf_transposed ? s->rows : s->cols;
    if (t->n_dims != want_dims || t->shape[0] != rows || (cols && t->shape[1] != cols)) {
        char got[128] = "", want[64];
        size_t at = 0;
        for (int d = 0; d < t->n_dims && at < sizeof got; d++)
            at += (size_t)snprintf(got + at, sizeof got - at, "%s%lld", d ? ", " : "",
                                   (long long)t->shape[d]);
        if (cols)
            snprintf(want, sizeof want, "%lld, %lld", (long long)rows, (long long)cols);
        else
            snprintf(want, sizeof want, "%lld", (long long)rows);
        return err_set("%s: %s: shape [%s], expected [%s]", f->path, s->hf_name, got, want);
    }
    if (!st_dtype_is_float(t->dtype))
        return err_set("%s: %s: dtype %s, expected F32, F16 or BF16", f->path, s->hf_name,
                       st_dtype_name(t->dtype));
    dtype_tally_add(tally, st_dtype_name(t->dtype));
    model_hash_tensor(hash, t->name, st_dtype_name(t->dtype), t->n_dims, t->shape, t->data,
                      t->n_bytes);
    if (!s->mat) return st_tensor_to_f32(f, t, s->dst);
    const uint32_t type = t->dtype == ST_F32 ? GGML_TYPE_F32
                          : t->dtype == ST_F16 ? GGML_TYPE_F16
                                               : GGML_TYPE_BF16;
    if (s->hf_transposed) {
        // GPT-2's Conv1D [in, out]: transposed once to [out, in], in its stored type, into
        // memory the model owns (a product over the file's layout would need other kernels).
        const size_t es = t->n_bytes / (size_t)(rows * cols);
        uint8_t *tr = model_own(m, t->n_bytes);
        if (!tr) return -1;
        const uint8_t *src = t->data;
        for (int64_t i = 0; i < rows; i++)
            for (int64_t j = 0; j < cols; j++)
                memcpy(tr + ((size_t)j * rows + i) * es, src + ((size_t)i * cols + j) * es, es);
        if (weight_mat_init(s->mat, type, tr, s->rows, s->cols, f->path, s->hf_name) != 0)
            return -1;
        if (convert_to != GGML_TYPE_F32 && convert_to != type)
            return convert_matrix(m, s->mat, convert_to, f->path, s->hf_name);
        m->weight_bytes_owned += t->n_bytes;
        return 0;
    }
    if (weight_mat_init(s->mat, type, t->data, s->rows, s->cols, f->path, s->hf_name) != 0)
        return -1;
    if (convert_to != GGML_TYPE_F32 && convert_to != type)
        return convert_matrix(m, s->mat, convert_to, f->path, s->hf_name);
    // safetensors aligns data to 8 bytes in practice but the format does not promise it: an
    // F32 matrix that sgemm would read misaligned is copied once, in its dtype.
    if (type == GGML_TYPE_F32 && (uintptr_t)t->data % sizeof(float)) {
        void *copy = model_own(m, t->n_bytes);
        if (!copy) return -1;
        memcpy(copy, t->data, t->n_bytes);
        s->mat->data = copy;
        m->weight_bytes_owned += t->n_bytes;
        return 0;
    }
    m->weight_bytes_mapped += t->n_bytes;
    return 0;
}

// The tokenizer's description (tokenizer_kind), or "none" without tokenizer.json. Read by the
// one tokenizer.json reader, so a directory that `tokenize` and `prep` accept loads here too.
static int detect_tokenizer(const char *dir, char *kind, size_t size) {
    char path[4096];
    if (path_join(path, sizeof path, dir, "tokenizer.json") != 0) return -1;
    snprintf(kind, size, "none");
    if (!path_exists(path)) return 0;
    tokenizer *tok = tokenizer_load(dir);
    if (!tok) return -1;
    snprintf(kind, size, "%s", tokenizer_kind(tok));
    tokenizer_free(tok);
    return 0;
}

// Gemma 3 after loading: norms held as 1 + w, the embedding scale in the embedding's dtype,
// and the one-line notice that a multimodal checkpoint's vision tower is left out.
static int gemma3_finish(model *m, const hf_weights *w, const char *dir) {
    const model_config *c = &m->cfg;
    arch_norm_plus_one(m->final_norm, c->hidden_size);
    for (int l = 0; l < c->n_layers; l++) {
        layer_weights *lw = &m->layers[l];
        float *norms[] = {lw->attn_norm, lw->mlp_norm, lw->post_attn_norm, lw->post_ffn_norm};
        for (int i = 0; i < 4; i++) arch_norm_plus_one(norms[i], c->hidden_size);
        arch_norm_plus_one(lw->q_norm, c->head_dim);
        arch_norm_plus_one(lw->k_norm, c->head_dim);
    }
    // transformers multiplies by embed_scale.to(weight.dtype): sqrt(C) rounded to BF16 or F16
    // when the checkpoint holds the embedding so (sqrt(3072) = 55.4256 becomes 55.5 in BF16).
    const st_file *f = NULL;
    const st_tensor *t = NULL;
    char alt[160];
    for (int k = 0; c->text_of_multimodal && !t && k < 2; k++)
        if (arch_hf_name_variant(alt, sizeof alt, "model.embed_tokens.weight", k) &&
            (w->index || safetensors_find(&w->files[0], alt)))
            t = hf_weights_find(w, alt, &f);
    if (!t) t = hf_weights_find(w, "model.embed_tokens.weight", &f);
    err_clear();
    if (t && t->dtype == ST_BF16) m->cfg.embed_scale = bf16_to_f32(f32_to_bf16(c->embed_scale));
    if (t && t->dtype == ST_F16) m->cfg.embed_scale = fp16_to_f32(f32_to_fp16(c->embed_scale));
    if (c->text_of_multimodal)
        fprintf(stderr, "medtune: note: %s: gemma3: the text model (text_config) is loaded, the "
                        "vision tower is ignored\n", dir);
    return 0;
}

int model_load_hf(model *m, const char *dir, base_dtype dtype) {
    char cfg_path[4096];
    if (path_join(cfg_path, sizeof cfg_path, dir, "config.json") != 0) return -1;
    if (!path_exists(cfg_path))
        return err_set("%s: not a model directory (no config.json)", dir);
    char *text;
    size_t len;
    if (file_read_all(cfg_path, &text, &len) != 0) return -1;
    model_config cfg;
    int rc = model_config_from_hf_json(&cfg, text, len, cfg_path);
    free(text);
    if (rc != 0) return -1;
    char tok_kind[sizeof m->tokenizer_kind];
    if (detect_tokenizer(dir, tok_kind, sizeof tok_kind) != 0) return -1;
    hf_weights w;
    if (hf_weights_open(&w, dir) != 0) {
        hf_weights_close(&w);
        return -1;
    }
    weight_slot *slots = NULL;
    int n = 0;
    rc = -1;
    if (model_alloc_stored(m, &cfg) != 0 || weight_slots_list(m, &slots, &n) != 0) goto done;
    const uint32_t convert_to = dtype == BASE_DTYPE_BF16   ? GGML_TYPE_BF16
                                : dtype == BASE_DTYPE_Q8_0 ? GGML_TYPE_Q8_0
                                                           : GGML_TYPE_F32;
    dtype_tally tally = {0};
    sha256_ctx hash;
    sha256_init(&hash);
    for (int i = 0; i < n; i++)
        if (load_slot(m, &w, &slots[i], cfg.tie_word_embeddings, convert_to, &tally, &hash,
                      cfg.text_of_multimodal) != 0)
            goto done;
    if (cfg.arch == MODEL_ARCH_GEMMA3 && gemma3_finish(m, &w, dir) != 0) goto done;
    arch_fused_split(m);
    if (convert_to != GGML_TYPE_F32)
        fprintf(stderr, "medtune: %s: base_dtype %s: the weight matrices converted at load to %s "
                        "(%.1f MiB held)\n",
                dir, dtype == BASE_DTYPE_BF16 ? "bf16" : "q8_0", ggml_type_name(convert_to),
                (double)model_weight_bytes(m) / (1024.0 * 1024.0));
    sha256_final(&hash, m->stored_sha256);
    m->has_stored_sha256 = 1;
    snprintf(m->source_format, sizeof m->source_format, "safetensors");
    dtype_tally_format(&tally, m->source_dtypes, sizeof m->source_dtypes);
    snprintf(m->tokenizer_kind, sizeof m->tokenizer_kind, "%s", tok_kind);
    if (cfg.tie_word_embeddings) m->lm_head = m->embed;
    // The matrices point into the shards' mappings: the model keeps them for its life.
    rc = 0;
    for (int i = 0; i < w.n && !rc; i++) rc = model_keep_map(m, &w.files[i].map);
done:
    free(slots);
    hf_weights_close(&w);
    return rc;
}
