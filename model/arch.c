// Qwen3 and Gemma 3: per-layer choices, sliding-window starts and config.json reading.
#include "model/arch.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/error.h"
#include "common/json_number.h"
#include "model/ops.h"

int arch_layer_sliding(const model_config *c, int l) {
    return c->sliding_window > 0 && l < MODEL_MAX_LAYERS && c->sliding_layer[l];
}

int arch_layer_local_rope(const model_config *c, int l) {
    return c->rope_local_theta > 0 && arch_layer_sliding(c, l);
}

void arch_rope_local_init(float *cos, float *sin, int P, int D, const model_config *c) {
    model_config local = *c;
    local.rope_theta = c->rope_local_theta;
    local.rope_scaling = ROPE_SCALING_NONE;
    rope_tables_init(cos, sin, P, D, &local);
}

void arch_sliding_starts(int32_t *start_sw, const int32_t *start, int B, int T, int window) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int64_t n = (int64_t)b * T + t;
            int lo = t - window + 1;
            start_sw[n] = start[n] > lo ? start[n] : lo;
        }
}

void arch_norm_plus_one(float *w, int64_t n) {
    for (int64_t i = 0; i < n; i++) w[i] = 1.0f + w[i];
}

// ---- config.json ----

// A key that is absent or null counts as missing (transformers writes null for unset ones).
static const cJSON *key_of(const cJSON *obj, const char *key) {
    const cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
    return v && !cJSON_IsNull(v) ? v : NULL;
}

static int read_int(const cJSON *obj, const char *file, const char *key, int def, int *out) {
    const cJSON *v = key_of(obj, key);
    if (!v) {
        *out = def;
        return 0;
    }
    long long n;
    if (!json_whole(v, -2147483647.0, 2147483647.0, &n))
        return err_set("%s: %s: expected an integer", file, key);
    *out = (int)n;
    return 0;
}

static int read_float(const cJSON *obj, const char *file, const char *key, float def,
                      float *out) {
    const cJSON *v = key_of(obj, key);
    if (!v) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(v)) return err_set("%s: %s: expected a number", file, key);
    *out = (float)v->valuedouble;
    return 0;
}

static int read_bool(const cJSON *obj, const char *file, const char *key, int def, int *out) {
    const cJSON *v = key_of(obj, key);
    if (!v) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsBool(v)) return err_set("%s: %s: expected true or false", file, key);
    *out = cJSON_IsTrue(v);
    return 0;
}

// sliding_layer from layer_types ("sliding_attention" / "full_attention"), one per layer.
static int read_layer_types(model_config *c, const cJSON *types, const char *file) {
    if (!cJSON_IsArray(types) || cJSON_GetArraySize(types) != c->n_layers)
        return err_set("%s: layer_types: expected a list of %d layer types", file, c->n_layers);
    int l = 0;
    for (const cJSON *e = types->child; e; e = e->next, l++) {
        const char *s = cJSON_IsString(e) ? e->valuestring : "";
        if (!strcmp(s, "sliding_attention"))
            c->sliding_layer[l] = 1;
        else if (strcmp(s, "full_attention"))
            return err_set("%s: layer_types[%d]: unsupported layer type '%s' (supported: "
                           "sliding_attention, full_attention)",
                           file, l, cJSON_IsString(e) ? e->valuestring : "?");
    }
    return 0;
}

static int check_layers(const model_config *c, const char *file) {
    if (c->n_layers > MODEL_MAX_LAYERS)
        return err_set("%s: num_hidden_layers: %d layers with sliding-window attention (at most "
                       "%d)", file, c->n_layers, MODEL_MAX_LAYERS);
    return 0;
}

int arch_hf_config(model_config *c, const cJSON *root, const char *file) {
    if (c->arch != MODEL_ARCH_QWEN3) return 0;
    c->qk_norm = 1;
    // Qwen3 puts attention_bias on all four projections (o_proj too), unlike Qwen2.
    if (read_bool(root, file, "attention_bias", 0, &c->attention_bias) != 0) return -1;
    c->out_bias = c->attention_bias;
    int use_sw = 0;
    if (read_bool(root, file, "use_sliding_window", 0, &use_sw) != 0) return -1;
    if (!use_sw) return 0;
    // transformers keeps the window only with use_sliding_window; the sliding layers are those
    // of layer_types, or by default the layers from max_window_layers on.
    int max_window_layers = 0;
    if (read_int(root, file, "sliding_window", 4096, &c->sliding_window) != 0 ||
        read_int(root, file, "max_window_layers", 28, &max_window_layers) != 0 ||
        check_layers(c, file) != 0)
        return -1;
    if (c->sliding_window <= 0) {
        c->sliding_window = 0;
        return 0;
    }
    const cJSON *types = key_of(root, "layer_types");
    if (types) return read_layer_types(c, types, file);
    for (int l = max_window_layers; l < c->n_layers; l++) c->sliding_layer[l] = 1;
    return 0;
}

// Gemma 3 rope: the global (full_attention) and local (sliding_attention) parameters, either
// nested in rope_parameters (transformers v5) or as rope_theta, rope_local_base_freq and
// rope_scaling (v4 and the Hub files).
static int gemma3_rope(model_config *c, const cJSON *t, const char *file) {
    const cJSON *rp = key_of(t, "rope_parameters");
    const cJSON *full = rp ? key_of(rp, "full_attention") : NULL;
    const cJSON *local = rp ? key_of(rp, "sliding_attention") : NULL;
    const char *full_key = "rope_parameters.full_attention";
    if (!full) {
        full = key_of(t, "rope_scaling");
        full_key = "rope_scaling";
        if (read_float(t, file, "rope_theta", 1000000.0f, &c->rope_theta) != 0 ||
            read_float(t, file, "rope_local_base_freq", 10000.0f, &c->rope_local_theta) != 0)
            return -1;
    } else {
        char k[96];
        snprintf(k, sizeof k, "%s.rope_theta", full_key);
        if (read_float(full, file, k, 1000000.0f, &c->rope_theta) != 0) return -1;
        if (read_float(local, file, "rope_parameters.sliding_attention.rope_theta", 10000.0f,
                       &c->rope_local_theta) != 0)
            return -1;
        const cJSON *lt = key_of(local, "rope_type");
        if (lt && (!cJSON_IsString(lt) || strcmp(lt->valuestring, "default")))
            return err_set("%s: rope_parameters.sliding_attention.rope_type: unsupported "
                           "(supported: default)", file);
    }
    c->rope_scaling = ROPE_SCALING_NONE;
    if (!full) return 0;
    if (!cJSON_IsObject(full)) return err_set("%s: %s: expected an object", file, full_key);
    const cJSON *type = key_of(full, "rope_type");
    if (!type) type = key_of(full, "type");
    const char *ty = cJSON_IsString(type) ? type->valuestring : "default";
    if (!strcmp(ty, "default")) return 0;
    if (strcmp(ty, "linear"))
        return err_set("%s: %s.rope_type: unsupported rope type '%s' (supported: default, "
                       "linear)", file, full_key, ty);
    c->rope_scaling = ROPE_SCALING_LINEAR;
    const cJSON *f = key_of(full, "factor");
    if (!cJSON_IsNumber(f)) return err_set("%s: %s.factor: missing or not a number", file, full_key);
    c->rope_factor = (float)f->valuedouble;
    return 0;
}

static int gemma3_eos(model_config *c, const cJSON *v, const char *file) {
    c->n_eos = 0;
    if (!v) return 0;
    const int list = cJSON_IsArray(v);
    if (!list && !cJSON_IsNumber(v))
        return err_set("%s: eos_token_id: expected an integer or a list", file);
    for (const cJSON *e = list ? v->child : v; e; e = list ? e->next : NULL) {
        long long id;
        if (c->n_eos == MODEL_MAX_EOS)
            return err_set("%s: eos_token_id: more than %d ids", file, MODEL_MAX_EOS);
        if (!json_whole(e, 0, 2147483647.0, &id))
            return err_set("%s: eos_token_id: expected token ids (integers >= 0)", file);
        c->eos_token_ids[c->n_eos++] = (int)id;
    }
    return 0;
}

int arch_gemma3_config(model_config *c, const cJSON *root, const char *file) {
    memset(c, 0, sizeof *c);
    c->arch = MODEL_ARCH_GEMMA3;
    const cJSON *mt = key_of(root, "model_type");
    const cJSON *t = root;
    if (cJSON_IsString(mt) && !strcmp(mt->valuestring, "gemma3")) {
        t = key_of(root, "text_config");
        if (!cJSON_IsObject(t))
            return err_set("%s: text_config: missing (a gemma3 checkpoint without its text model "
                           "cannot be loaded)", file);
        c->text_of_multimodal = 1;
    }
    if (key_of(root, "quantization_config") || key_of(t, "quantization_config"))
        return err_set("%s: quantization_config: quantized checkpoints are unsupported", file);
    if (key_of(t, "attn_logit_softcapping"))
        return err_set("%s: attn_logit_softcapping: attention logit soft-capping (Gemma 2) is "
                       "unsupported", file);
    int bidir = 0;
    if (read_bool(t, file, "use_bidirectional_attention", 0, &bidir) != 0) return -1;
    if (bidir)
        return err_set("%s: use_bidirectional_attention: true is unsupported (causal only)", file);
    const char *act_key = key_of(t, "hidden_activation") ? "hidden_activation" : "hidden_act";
    const cJSON *act = key_of(t, act_key);
    if (act && (!cJSON_IsString(act) || strcmp(act->valuestring, "gelu_pytorch_tanh")))
        return err_set("%s: %s: unsupported activation '%s' (supported: gelu_pytorch_tanh)", file,
                       act_key, cJSON_IsString(act) ? act->valuestring : "?");
    // Gemma3TextConfig's defaults: the Hub configs of gemma3 leave out the keys that equal them.
    float qpas;
    int tie_root = 1, qpas_i = 0;
    if (read_int(t, file, "hidden_size", 2304, &c->hidden_size) != 0 ||
        read_int(t, file, "intermediate_size", 9216, &c->intermediate_size) != 0 ||
        read_int(t, file, "num_hidden_layers", 26, &c->n_layers) != 0 ||
        read_int(t, file, "num_attention_heads", 8, &c->n_heads) != 0 ||
        read_int(t, file, "num_key_value_heads", 4, &c->n_kv_heads) != 0 ||
        read_int(t, file, "head_dim", 256, &c->head_dim) != 0 ||
        read_int(t, file, "vocab_size", 262208, &c->vocab_size) != 0 ||
        read_int(t, file, "max_position_embeddings", 131072, &c->max_position_embeddings) != 0 ||
        read_float(t, file, "rms_norm_eps", 1e-6f, &c->rms_norm_eps) != 0 ||
        read_bool(root, file, "tie_word_embeddings", 1, &tie_root) != 0 ||
        read_bool(t, file, "tie_word_embeddings", tie_root, &c->tie_word_embeddings) != 0 ||
        read_int(t, file, "bos_token_id", 2, &c->bos_token_id) != 0 ||
        read_bool(t, file, "attention_bias", 0, &c->attention_bias) != 0 ||
        read_int(t, file, "query_pre_attn_scalar", 256, &qpas_i) != 0 ||
        read_int(t, file, "sliding_window", 4096, &c->sliding_window) != 0 ||
        read_float(t, file, "final_logit_softcapping", 0.0f, &c->final_softcap) != 0 ||
        gemma3_rope(c, t, file) != 0)
        return -1;
    const cJSON *eos = key_of(t, "eos_token_id");
    if (gemma3_eos(c, eos ? eos : key_of(root, "eos_token_id"), file) != 0) return -1;
    if (!eos && !key_of(root, "eos_token_id")) c->eos_token_ids[c->n_eos++] = 1;
    if (qpas_i <= 0) return err_set("%s: query_pre_attn_scalar: must be positive", file);
    qpas = (float)qpas_i;
    c->qk_norm = 1;
    c->post_norms = 1;
    c->gelu_mlp = 1;
    c->out_bias = c->attention_bias;
    // transformers: hidden_size**0.5 as an fp32 tensor, cast to the embedding's dtype (the
    // loader rounds it for BF16/F16 checkpoints, see model_load_hf).
    c->embed_scale = (float)sqrt((double)c->hidden_size);
    if (qpas_i != c->head_dim) c->q_scale = (float)(sqrt((double)c->head_dim) / sqrt((double)qpas));
    if (c->sliding_window < 0) return err_set("%s: sliding_window: must not be negative", file);
    if (c->sliding_window > 0) {
        if (check_layers(c, file) != 0) return -1;
        const cJSON *types = key_of(t, "layer_types");
        if (types) {
            if (read_layer_types(c, types, file) != 0) return -1;
        } else {
            int pattern = 0;
            if (read_int(t, file, "sliding_window_pattern", 6, &pattern) != 0) return -1;
            if (pattern <= 0)
                return err_set("%s: sliding_window_pattern: must be positive", file);
            for (int l = 0; l < c->n_layers; l++) c->sliding_layer[l] = (l + 1) % pattern != 0;
        }
    }
    return model_config_validate(c, file);
}

int arch_hf_name_variant(char *out, size_t size, const char *name, int k) {
    static const char *const PREFIX[2][2] = {
        {"model.language_model.", "lm_head."},           // transformers >= 4.52
        {"language_model.model.", "language_model.lm_head."},  // the Hub's gemma3 files
    };
    if (k < 0 || k > 1) return 0;
    if (!strncmp(name, "model.", 6))
        snprintf(out, size, "%s%s", PREFIX[k][0], name + 6);
    else if (!strncmp(name, "lm_head.", 8))
        snprintf(out, size, "%s%s", PREFIX[k][1], name + 8);
    else
        return 0;
    return 1;
}
