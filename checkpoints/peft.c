#include "checkpoints/peft.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileio.h"
#include "formats/safetensors.h"

#define PEFT_CONFIG "adapter_config.json"
#define PEFT_WEIGHTS "adapter_model.safetensors"

static int write_config(const char *dir, const lora_adapter *a, const char *base_model) {
    // cJSON keeps insertion order: keys are added in sorted order, as PEFT's save_pretrained.
    cJSON *j = cJSON_CreateObject();
    cJSON_AddObjectToObject(j, "alpha_pattern");
    cJSON_AddStringToObject(j, "base_model_name_or_path", base_model ? base_model : "");
    cJSON_AddStringToObject(j, "bias", "none");
    // PEFT requires it for gpt2's Conv1D modules, whose weights are stored [in, out].
    cJSON_AddBoolToObject(j, "fan_in_fan_out", a->arch == MODEL_ARCH_GPT2);
    cJSON_AddBoolToObject(j, "inference_mode", 1);
    cJSON_AddBoolToObject(j, "init_lora_weights", 1);
    cJSON_AddNullToObject(j, "layers_pattern");
    cJSON_AddNullToObject(j, "layers_to_transform");
    cJSON_AddNumberToObject(j, "lora_alpha", a->cfg.alpha);
    cJSON_AddNumberToObject(j, "lora_dropout", a->cfg.dropout);
    cJSON_AddNullToObject(j, "modules_to_save");
    cJSON_AddStringToObject(j, "peft_type", "LORA");
    cJSON_AddNumberToObject(j, "r", a->cfg.r);
    cJSON_AddObjectToObject(j, "rank_pattern");
    cJSON_AddNullToObject(j, "revision");
    cJSON *targets = cJSON_AddArrayToObject(j, "target_modules");
    // Sorted by name, as PEFT stores its target set.
    const char *names[LORA_N_TARGETS];
    int n = 0;
    for (int t = 0; t < LORA_N_TARGETS; t++) {
        if (!lora_enabled(a, t)) continue;
        const char *name = lora_arch_target_name(a->arch, t);
        int seen = 0;  // gpt2's c_proj covers two targets
        for (int i = 0; i < n; i++) seen |= !strcmp(names[i], name);
        if (!seen) names[n++] = name;
    }
    for (int i = 1; i < n; i++)
        for (int k = i; k > 0 && strcmp(names[k - 1], names[k]) > 0; k--) {
            const char *tmp = names[k];
            names[k] = names[k - 1];
            names[k - 1] = tmp;
        }
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(targets, cJSON_CreateString(names[i]));
    cJSON_AddStringToObject(j, "task_type", "CAUSAL_LM");
    cJSON_AddBoolToObject(j, "use_dora", 0);
    cJSON_AddBoolToObject(j, "use_rslora", a->cfg.use_rslora);
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    if (!text) return err_set("%s: out of memory", dir);
    char path[4096];
    int rc = path_join(path, sizeof path, dir, PEFT_CONFIG);
    if (!rc) rc = file_write_atomic(path, text, strlen(text));
    free(text);
    return rc;
}

int peft_adapter_write(const char *dir, const lora_adapter *a, const char *base_model) {
    if (dir_create(dir)) return -1;
    int n_tensors = 0;
    for (int t = 0; t < LORA_N_TARGETS; t++) n_tensors += 2 * lora_enabled(a, t);
    n_tensors *= a->n_layers;
    st_write_tensor *tensors = calloc((size_t)n_tensors, sizeof *tensors);
    char (*names)[160] = calloc((size_t)n_tensors, sizeof *names);
    if (!tensors || !names) {
        free(tensors);
        free(names);
        return err_set("%s: out of memory", dir);
    }
    int k = 0;
    for (int l = 0; l < a->n_layers; l++)
        for (int t = 0; t < LORA_N_TARGETS; t++) {
            if (!lora_enabled(a, t)) continue;
            for (int is_b = 0; is_b < 2; is_b++, k++) {
                lora_peft_tensor_name(a, names[k], sizeof names[k], l, t, is_b);
                tensors[k].name = names[k];
                tensors[k].dtype = ST_F32;
                tensors[k].n_dims = 2;
                tensors[k].shape[0] = is_b ? a->slots[t].out : a->cfg.r;
                tensors[k].shape[1] = is_b ? a->cfg.r : a->slots[t].in;
                tensors[k].data = is_b ? lora_B(a, l, t) : lora_A(a, l, t);
            }
        }
    char path[4096];
    st_meta meta = {"format", "pt"};
    int rc = path_join(path, sizeof path, dir, PEFT_WEIGHTS);
    if (!rc) rc = safetensors_write(path, tensors, n_tensors, &meta, 1);
    free(tensors);
    free(names);
    if (!rc) rc = write_config(dir, a, base_model);
    return rc;
}

static int config_unsupported_if(const cJSON *j, const char *path, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v || cJSON_IsNull(v) || cJSON_IsFalse(v)) return 0;
    if ((cJSON_IsObject(v) || cJSON_IsArray(v)) && cJSON_GetArraySize(v) == 0) return 0;
    return err_set("%s: %s: not supported by medtune (plain LoRA on all layers only)", path, key);
}

int peft_adapter_read_base_model(const char *dir, char *out, size_t n) {
    char path[4096], *text;
    if (path_join(path, sizeof path, dir, PEFT_CONFIG) || file_read_all(path, &text, NULL))
        return -1;
    cJSON *j = cJSON_Parse(text);
    free(text);
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(j, "base_model_name_or_path");
    int rc = 0;
    if (!cJSON_IsObject(j))
        rc = err_set("%s: not a JSON object", path);
    else if (snprintf(out, n, "%s", cJSON_IsString(b) ? b->valuestring : "") >= (int)n)
        rc = err_set("%s: base_model_name_or_path too long", path);
    cJSON_Delete(j);
    return rc;
}

int peft_adapter_read_config(const char *dir, lora_config *cfg) {
    char path[4096];
    if (path_join(path, sizeof path, dir, PEFT_CONFIG)) return -1;
    char *text;
    if (file_read_all(path, &text, NULL)) return -1;
    cJSON *j = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return err_set("%s: not a JSON object", path);
    }
    memset(cfg, 0, sizeof *cfg);
    int rc = -1;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "peft_type");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "r");
    const cJSON *alpha = cJSON_GetObjectItemCaseSensitive(j, "lora_alpha");
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(j, "lora_dropout");
    const cJSON *targets = cJSON_GetObjectItemCaseSensitive(j, "target_modules");
    if (!cJSON_IsString(type) || strcmp(type->valuestring, "LORA")) {
        err_set("%s: peft_type: only LORA adapters are supported", path);
    } else if (!cJSON_IsNumber(r) || r->valueint <= 0) {
        err_set("%s: r: must be a positive integer", path);
    } else if (alpha && !cJSON_IsNumber(alpha)) {
        err_set("%s: lora_alpha: must be a number", path);
    } else if (config_unsupported_if(j, path, "use_dora") ||
               config_unsupported_if(j, path, "rank_pattern") ||
               config_unsupported_if(j, path, "alpha_pattern") ||
               config_unsupported_if(j, path, "layers_to_transform") ||
               config_unsupported_if(j, path, "modules_to_save")) {
    } else {
        cfg->r = r->valueint;
        cfg->alpha = alpha ? (float)alpha->valuedouble : 8.0f;
        cfg->dropout = cJSON_IsNumber(dropout) ? (float)dropout->valuedouble : 0.0f;
        cfg->use_rslora = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "use_rslora"));
        rc = 0;
        if (cJSON_IsString(targets) && !strcmp(targets->valuestring, "all-linear")) {
            cfg->targets = (1u << LORA_N_TARGETS) - 1;
        } else if (cJSON_IsArray(targets) && cJSON_GetArraySize(targets) > 0) {
            const cJSON *it;
            cJSON_ArrayForEach(it, targets) {
                uint32_t t = cJSON_IsString(it) ? lora_targets_from_name(it->valuestring) : 0;
                if (!t) {
                    rc = err_set("%s: target_modules: %s is not a supported projection (q_proj "
                                 "k_proj v_proj o_proj gate_proj up_proj down_proj; phi3: "
                                 "qkv_proj gate_up_proj; gpt2: c_attn c_proj c_fc)",
                                 path, cJSON_IsString(it) ? it->valuestring : "(not a string)");
                    break;
                }
                cfg->targets |= t;
            }
        } else {
            rc = err_set("%s: target_modules: must be a non-empty list of projection names", path);
        }
    }
    cJSON_Delete(j);
    return rc;
}

// The layer, target and matrix of a PEFT tensor name on the adapter's architecture: the name
// must be exactly the one lora_peft_tensor_name gives.
static int parse_arch_tensor_name(const lora_adapter *a, const char *name, int *layer,
                                  int *target, int *is_b) {
    const char *prefix = "base_model.model.transformer.h.";
    size_t pl = strlen(prefix);
    if (strncmp(name, prefix, pl)) return -1;
    char *end;
    long l = strtol(name + pl, &end, 10);
    if (end == name + pl || *end != '.' || l < 0 || l > 100000) return -1;
    for (int t = 0; t < LORA_N_TARGETS; t++)
        for (int b = 0; b < 2; b++) {
            char expect[256];
            if (!lora_arch_target_name(a->arch, t)) continue;
            lora_peft_tensor_name(a, expect, sizeof expect, (int)l, t, b);
            if (strcmp(expect, name)) continue;
            *layer = (int)l;
            *target = t;
            *is_b = b;
            return 0;
        }
    return -1;
}

// Parses "base_model.model.model.layers.N.<module>.<proj>.lora_{A,B}.weight" (PEFT may also
// write the adapter name before ".weight"; medtune and PEFT's save_pretrained do not).
static int parse_tensor_name(const char *name, int *layer, int *target, int *is_b) {
    const char *prefix = "base_model.model.model.layers.";
    size_t pl = strlen(prefix);
    if (strncmp(name, prefix, pl)) return -1;
    char *end;
    long l = strtol(name + pl, &end, 10);
    if (end == name + pl || *end != '.' || l < 0 || l > 100000) return -1;
    char module[32], proj[32], which[16];
    if (sscanf(end + 1, "%31[^.].%31[^.].%15[^.].weight", module, proj, which) != 3) return -1;
    int t = lora_target_from_name(proj);
    if (t < 0 || strcmp(module, lora_target_module(t))) return -1;
    if (!strcmp(which, "lora_A")) *is_b = 0;
    else if (!strcmp(which, "lora_B")) *is_b = 1;
    else return -1;
    char expect[256];
    lora_tensor_name(expect, sizeof expect, (int)l, t, *is_b);
    if (strcmp(expect, name)) return -1;
    *layer = (int)l;
    *target = t;
    return 0;
}

int peft_adapter_read_weights(const char *dir, lora_adapter *a) {
    char path[4096];
    if (path_join(path, sizeof path, dir, PEFT_WEIGHTS)) return -1;
    st_file f;
    if (safetensors_open(&f, path)) return -1;
    int rc = 0;
    for (int i = 0; i < f.n_tensors && !rc; i++) {
        const st_tensor *t = &f.tensors[i];
        int layer, target, is_b;
        if (a->arch == MODEL_ARCH_GPT2 ? parse_arch_tensor_name(a, t->name, &layer, &target, &is_b)
                                       : parse_tensor_name(t->name, &layer, &target, &is_b)) {
            rc = err_set("%s: %s: not a LoRA A/B matrix of a supported projection (embedding "
                         "adapters, DoRA and other modules are not supported)",
                         path, t->name);
            break;
        }
        if (layer >= a->n_layers || !lora_enabled(a, target)) {
            rc = err_set("%s: %s: the adapter config does not enable this layer/target", path,
                         t->name);
            break;
        }
        const lora_slot *s = &a->slots[target];
        int64_t rows = is_b ? s->out : a->cfg.r, cols = is_b ? a->cfg.r : s->in;
        if (t->n_dims != 2 || t->shape[0] != rows || t->shape[1] != cols) {
            rc = err_set("%s: %s: shape [%lld, %lld], expected [%lld, %lld] for this model", path,
                         t->name, t->n_dims > 0 ? (long long)t->shape[0] : 0LL,
                         t->n_dims > 1 ? (long long)t->shape[1] : 0LL, (long long)rows,
                         (long long)cols);
            break;
        }
        rc = st_tensor_to_f32(&f, t, is_b ? lora_B(a, layer, target) : lora_A(a, layer, target));
    }
    for (int l = 0; l < a->n_layers && !rc; l++)
        for (int t = 0; t < LORA_N_TARGETS && !rc; t++)
            for (int is_b = 0; is_b < 2 && !rc && lora_enabled(a, t); is_b++) {
                char name[160];
                lora_peft_tensor_name(a, name, sizeof name, l, t, is_b);
                if (!safetensors_find(&f, name))
                    rc = err_set("%s: %s: missing", path, name);
            }
    safetensors_close(&f);
    return rc;
}

int peft_adapter_load(const char *dir, const model_config *mc, lora_adapter *a) {
    lora_config cfg;
    if (peft_adapter_read_config(dir, &cfg)) return -1;
    if (lora_adapter_init(a, mc, &cfg)) return err_prefix("%s", dir);
    if (peft_adapter_read_weights(dir, a)) {
        lora_adapter_free(a);
        return -1;
    }
    return 0;
}
