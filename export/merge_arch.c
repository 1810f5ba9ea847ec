// What a merged qwen3 or gemma3 GGUF base needs beyond the Llama config.json and weights: the
// keys transformers' Qwen3Config / Gemma3TextConfig read (so transformers and medtune rebuild
// the same model), and gemma norms back in HF's form (w, where llama.cpp stores 1 + w).
#include <math.h>
#include <string.h>

#include "export/merge_impl.h"

static void set_item(cJSON *j, const char *key, cJSON *v) {
    if (cJSON_GetObjectItemCaseSensitive(j, key))
        cJSON_ReplaceItemInObjectCaseSensitive(j, key, v);
    else
        cJSON_AddItemToObject(j, key, v);
}

static void set_arch(cJSON *j, const char *class_name, const char *model_type) {
    cJSON *archs = cJSON_CreateArray();
    cJSON_AddItemToArray(archs, cJSON_CreateString(class_name));
    set_item(j, "architectures", archs);
    set_item(j, "model_type", cJSON_CreateString(model_type));
}

static cJSON *layer_types(const model_config *c) {
    cJSON *a = cJSON_CreateArray();
    for (int l = 0; l < c->n_layers; l++)
        cJSON_AddItemToArray(a, cJSON_CreateString(c->sliding_window > 0 && c->sliding_layer[l]
                                                       ? "sliding_attention"
                                                       : "full_attention"));
    return a;
}

static cJSON *rope_object(const char *type, float theta, float factor,
                          cJSON *(*json_float)(float)) {
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "rope_type", type);
    cJSON_AddItemToObject(r, "rope_theta", json_float(theta));
    if (!strcmp(type, "linear")) cJSON_AddItemToObject(r, "factor", json_float(factor));
    return r;
}

void merge_arch_config(cJSON *j, const model_config *c, cJSON *(*json_float)(float)) {
    if (c->arch == MODEL_ARCH_QWEN3) {
        set_arch(j, "Qwen3ForCausalLM", "qwen3");
        set_item(j, "attention_bias", cJSON_CreateBool(c->attention_bias));
        set_item(j, "use_sliding_window", cJSON_CreateBool(c->sliding_window > 0));
        if (c->sliding_window > 0) {
            set_item(j, "sliding_window", cJSON_CreateNumber(c->sliding_window));
            set_item(j, "layer_types", layer_types(c));
        }
        return;
    }
    if (c->arch != MODEL_ARCH_GEMMA3) return;
    set_arch(j, "Gemma3ForCausalLM", "gemma3_text");
    cJSON_DeleteItemFromObjectCaseSensitive(j, "hidden_act");
    cJSON_DeleteItemFromObjectCaseSensitive(j, "mlp_bias");
    cJSON_DeleteItemFromObjectCaseSensitive(j, "rope_theta");
    cJSON_DeleteItemFromObjectCaseSensitive(j, "rope_scaling");
    set_item(j, "hidden_activation", cJSON_CreateString("gelu_pytorch_tanh"));
    set_item(j, "attention_bias", cJSON_CreateBool(c->attention_bias));
    // q_scale = sqrt(head_dim / query_pre_attn_scalar) (0 when they are equal).
    double qpas = c->q_scale > 0 ? c->head_dim / ((double)c->q_scale * c->q_scale) : c->head_dim;
    set_item(j, "query_pre_attn_scalar", cJSON_CreateNumber(round(qpas)));
    set_item(j, "sliding_window", c->sliding_window > 0 ? cJSON_CreateNumber(c->sliding_window)
                                                        : cJSON_CreateNull());
    set_item(j, "layer_types", layer_types(c));
    set_item(j, "final_logit_softcapping",
             c->final_softcap > 0 ? json_float(c->final_softcap) : cJSON_CreateNull());
    set_item(j, "attn_logit_softcapping", cJSON_CreateNull());
    cJSON *rp = cJSON_CreateObject();
    cJSON_AddItemToObject(rp, "full_attention",
                          rope_object(c->rope_scaling == ROPE_SCALING_LINEAR ? "linear" : "default",
                                      c->rope_theta, c->rope_factor, json_float));
    float local = c->rope_local_theta > 0 ? c->rope_local_theta : c->rope_theta;
    cJSON_AddItemToObject(rp, "sliding_attention", rope_object("default", local, 0, json_float));
    set_item(j, "rope_parameters", rp);
}

void merge_arch_from_gguf(float *w, const weight_slot *s, const model_config *c) {
    if (c->arch != MODEL_ARCH_GEMMA3 || s->cols) return;
    size_t n = strlen(s->hf_name), suffix = strlen("norm.weight");
    if (n < suffix || strcmp(s->hf_name + n - suffix, "norm.weight")) return;
    for (int64_t i = 0; i < s->rows; i++) w[i] -= 1.0f;
}
