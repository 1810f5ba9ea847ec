// test_model_load MODEL REF_DIR: loads MODEL with model_load() and compares the config and
// every fp32 weight with REF_DIR/ref.json + ref.f32, written by tests/load/refs.py from the
// `safetensors` / `gguf` Python packages (tests/load/run_case.py drives it). Weights must be
// bit-identical: fp16/bf16 widening and block dequantization are exact in both.
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileio.h"
#include "tests/testlib.h"
#include "model/model.h"
#include "model/model_load.h"

static int failures;

static void check_int(const cJSON *cfg, const char *key, long long got) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (!v) return;
    if (!cJSON_IsNumber(v) || (long long)v->valuedouble != got) {
        printf("config %s: got %lld, expected %s\n", key, got, cJSON_PrintUnformatted(v));
        failures++;
    }
}

static void check_float(const cJSON *cfg, const char *key, float got) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (!v) return;
    if (!cJSON_IsNumber(v) || (float)v->valuedouble != got) {
        printf("config %s: got %.9g, expected %.9g\n", key, (double)got, v->valuedouble);
        failures++;
    }
}

static void check_str(const cJSON *cfg, const char *key, const char *got) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (!v) return;
    if (!cJSON_IsString(v) || strcmp(v->valuestring, got)) {
        printf("config %s: got '%s', expected '%s'\n", key, got,
               cJSON_IsString(v) ? v->valuestring : "?");
        failures++;
    }
}

static void check_bool(const cJSON *cfg, const char *key, int got) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (!v) return;
    if (!cJSON_IsBool(v) || cJSON_IsTrue(v) != !!got) {
        printf("config %s: got %d, expected %s\n", key, got, cJSON_IsTrue(v) ? "true" : "false");
        failures++;
    }
}

static void check_config(const model *m, const cJSON *cfg) {
    const model_config *c = &m->cfg;
    static const char *const ROPE[] = {"none", "linear", "llama3"};
    check_str(cfg, "arch", model_arch_name(c->arch));
    check_int(cfg, "hidden_size", c->hidden_size);
    check_int(cfg, "intermediate_size", c->intermediate_size);
    check_int(cfg, "n_layers", c->n_layers);
    check_int(cfg, "n_heads", c->n_heads);
    check_int(cfg, "n_kv_heads", c->n_kv_heads);
    check_int(cfg, "head_dim", c->head_dim);
    check_int(cfg, "vocab_size", c->vocab_size);
    check_int(cfg, "max_position_embeddings", c->max_position_embeddings);
    check_float(cfg, "rms_norm_eps", c->rms_norm_eps);
    check_float(cfg, "rope_theta", c->rope_theta);
    check_str(cfg, "rope_scaling", ROPE[c->rope_scaling]);
    check_float(cfg, "rope_factor", c->rope_factor);
    check_float(cfg, "rope_low_freq_factor", c->rope_low_freq_factor);
    check_float(cfg, "rope_high_freq_factor", c->rope_high_freq_factor);
    check_int(cfg, "rope_original_max_position", c->rope_original_max_position);
    check_bool(cfg, "tie_word_embeddings", c->tie_word_embeddings);
    check_bool(cfg, "attention_bias", c->attention_bias);
    check_int(cfg, "bos_token_id", c->bos_token_id);
    check_int(cfg, "n_params", (long long)m->n_params);
    check_str(cfg, "source_format", m->source_format);
    check_str(cfg, "source_dtypes", m->source_dtypes);
    check_str(cfg, "tokenizer_kind", m->tokenizer_kind);
    const cJSON *eos = cJSON_GetObjectItemCaseSensitive(cfg, "eos_token_ids");
    int n = cJSON_GetArraySize(eos);
    int same = n == c->n_eos;
    for (int i = 0; same && i < n; i++)
        same = (int)cJSON_GetArrayItem(eos, i)->valuedouble == c->eos_token_ids[i];
    if (!same) {
        printf("config eos_token_ids differ (got %d ids)\n", c->n_eos);
        failures++;
    }
}

// A matrix of the model as fp32, in a malloc'd copy (the model keeps it in its stored type).
static float *matrix_f32(const weight_mat *w, size_t *n) {
    *n = (size_t)(w->rows * w->cols);
    float *out = malloc(*n * sizeof *out);
    if (!out) test_fail("out of memory");
    weight_rows_to_f32(w, 0, w->rows, out);
    return out;
}

// The model.h field called `name` ("embed", "layers.3.wq", ...) and its length, as fp32:
// *copy is set when the result is a malloc'd copy the caller frees.
static const float *field_ptr(const model *m, const char *name, size_t *n, float **copy) {
    const model_config *c = &m->cfg;
    size_t C = (size_t)c->hidden_size;
    size_t q = (size_t)c->n_heads * c->head_dim, kv = (size_t)c->n_kv_heads * c->head_dim;
    *copy = NULL;
    if (!strcmp(name, "embed")) return *copy = matrix_f32(&m->embed, n);
    if (!strcmp(name, "final_norm")) return *n = C, m->final_norm;
    if (!strcmp(name, "lm_head")) return *copy = matrix_f32(&m->lm_head, n);
    int l;
    char f[32];
    if (sscanf(name, "layers.%d.%31s", &l, f) != 2 || l < 0 || l >= c->n_layers) return NULL;
    const layer_weights *w = &m->layers[l];
    const struct {
        const char *name;
        const float *p;
        size_t n;
    } VECTORS[] = {
        {"attn_norm", w->attn_norm, C}, {"bq", w->bq, q},  {"bk", w->bk, kv},
        {"bv", w->bv, kv},              {"mlp_norm", w->mlp_norm, C},
    };
    const struct {
        const char *name;
        const weight_mat *w;
    } MATRICES[] = {
        {"wq", &w->wq}, {"wk", &w->wk}, {"wv", &w->wv}, {"wo", &w->wo},
        {"w_gate", &w->w_gate}, {"w_up", &w->w_up}, {"w_down", &w->w_down},
    };
    for (size_t i = 0; i < sizeof VECTORS / sizeof VECTORS[0]; i++)
        if (!strcmp(f, VECTORS[i].name)) return *n = VECTORS[i].n, VECTORS[i].p;
    for (size_t i = 0; i < sizeof MATRICES / sizeof MATRICES[0]; i++)
        if (!strcmp(f, MATRICES[i].name)) return *copy = matrix_f32(MATRICES[i].w, n);
    return NULL;
}

static void check_tensors(model *m, const cJSON *tensors, FILE *data) {
    int count = 0;
    for (const cJSON *t = tensors->child; t; t = t->next, count++) {
        const char *name = cJSON_GetObjectItemCaseSensitive(t, "name")->valuestring;
        double off = cJSON_GetObjectItemCaseSensitive(t, "offset")->valuedouble;
        size_t want = 1;
        for (const cJSON *d = cJSON_GetObjectItemCaseSensitive(t, "shape")->child; d; d = d->next)
            want *= (size_t)d->valuedouble;
        size_t n = 0;
        float *copy;
        const float *got = field_ptr(m, name, &n, &copy);
        if (!got || n != want) {
            printf("%s: %s in the model (%zu elements, reference %zu)\n", name,
                   got ? "size differs" : "absent", n, want);
            failures++;
            free(copy);
            continue;
        }
        float *ref = malloc(n * sizeof *ref);
        if (!ref || fseek(data, (long)(off * 4), SEEK_SET) != 0 || fread(ref, 4, n, data) != n)
            test_fail("cannot read %s from ref.f32", name);
        size_t bad = 0, first = 0;
        for (size_t i = 0; i < n; i++)
            if (memcmp(&got[i], &ref[i], 4) != 0 && !(got[i] == 0 && ref[i] == 0)) {
                if (!bad) first = i;
                bad++;
            }
        if (bad) {
            printf("%s: %zu of %zu elements differ (max |diff| %.3g; first at %zu: got %.9g, "
                   "expected %.9g)\n",
                   name, bad, n, max_abs_diff(got, ref, n), first, (double)got[first],
                   (double)ref[first]);
            failures++;
        }
        free(ref);
        free(copy);
    }
    // Every weight of the model must have been covered by the reference.
    weight_slot *slots;
    int n_slots;
    if (weight_slots_list(m, &slots, &n_slots) != 0) test_fail("%s", err_msg());
    if (n_slots != count) {
        printf("reference has %d tensors, the model %d\n", count, n_slots);
        failures++;
    }
    free(slots);
}

int main(int argc, char **argv) {
    if (argc != 3) test_fail("usage: test_model_load MODEL REF_DIR");
    char path[4096];
    char *text;
    snprintf(path, sizeof path, "%s/ref.json", argv[2]);
    if (file_read_all(path, &text, NULL) != 0) test_fail("%s", err_msg());
    cJSON *ref = cJSON_Parse(text);
    free(text);
    if (!ref) test_fail("%s: invalid JSON", path);
    model m;
    if (model_load(&m, argv[1]) != 0) test_fail("model_load: %s", err_msg());
    check_config(&m, cJSON_GetObjectItemCaseSensitive(ref, "config"));
    snprintf(path, sizeof path, "%s/ref.f32", argv[2]);
    FILE *data = fopen(path, "rb");
    if (!data) test_fail("cannot open %s", path);
    check_tensors(&m, cJSON_GetObjectItemCaseSensitive(ref, "tensors"), data);
    fclose(data);
    printf("%s: %s, %zu parameters (%s): %s\n", argv[1], model_arch_name(m.cfg.arch), m.n_params,
           m.source_dtypes, failures ? "MISMATCH" : "all weights identical to the reference");
    model_free(&m);
    cJSON_Delete(ref);
    return failures ? 1 : 0;
}
