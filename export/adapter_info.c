#include "export/adapter_info.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export/export_source.h"
#include "checkpoints/peft.h"
#include "checkpoints/run_dir.h"
#include "checkpoints/state.h"
#include "common/error.h"
#include "common/fileio.h"
#include "formats/safetensors.h"
#include "model/lora.h"

typedef struct {
    lora_config cfg;
    char base_model[4096];
    int n_tensors;
    int n_layers;  // highest layer index in the tensor names + 1
    size_t n_params;
} adapter_desc;

static int adapter_describe(const char *dir, adapter_desc *d) {
    memset(d, 0, sizeof *d);
    if (peft_adapter_read_config(dir, &d->cfg)) return -1;
    if (peft_adapter_read_base_model(dir, d->base_model, sizeof d->base_model)) return -1;
    char path[4096];
    st_file f;
    if (path_join(path, sizeof path, dir, "adapter_model.safetensors") || safetensors_open(&f, path))
        return -1;
    for (int i = 0; i < f.n_tensors; i++) {
        d->n_params += f.tensors[i].n_elements;
        const char *l = strstr(f.tensors[i].name, ".layers.");
        int layer = l ? atoi(l + 8) : -1;
        if (layer + 1 > d->n_layers) d->n_layers = layer + 1;
    }
    d->n_tensors = f.n_tensors;
    safetensors_close(&f);
    return 0;
}

static void targets_text(const lora_config *c, char *out, size_t n) {
    out[0] = '\0';
    for (int t = 0; t < LORA_N_TARGETS; t++)
        if ((c->targets >> t) & 1u)
            snprintf(out + strlen(out), n - strlen(out), "%s%s", *out ? " " : "",
                     LORA_TARGET_NAMES[t]);
}

static cJSON *lora_json(const lora_config *c) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "r", c->r);
    cJSON_AddNumberToObject(o, "alpha", c->alpha);
    cJSON_AddNumberToObject(o, "scale", lora_scale(c));
    cJSON_AddNumberToObject(o, "dropout", c->dropout);
    cJSON_AddBoolToObject(o, "use_rslora", c->use_rslora);
    cJSON *t = cJSON_AddArrayToObject(o, "targets");
    for (int k = 0; k < LORA_N_TARGETS; k++)
        if ((c->targets >> k) & 1u) cJSON_AddItemToArray(t, cJSON_CreateString(LORA_TARGET_NAMES[k]));
    return o;
}

static cJSON *adapter_json(const char *dir, const adapter_desc *d) {
    cJSON *o = lora_json(&d->cfg);
    cJSON_AddStringToObject(o, "path", dir);
    cJSON_AddStringToObject(o, "base_model", d->base_model);
    cJSON_AddNumberToObject(o, "n_tensors", d->n_tensors);
    cJSON_AddNumberToObject(o, "n_layers", d->n_layers);
    cJSON_AddNumberToObject(o, "n_params", (double)d->n_params);
    return o;
}

static void print_lora_text(const lora_config *c) {
    char targets[128];
    targets_text(c, targets, sizeof targets);
    printf("r / alpha            %d / %g (scale %g%s)\n", c->r, (double)c->alpha,
           (double)lora_scale(c), c->use_rslora ? ", rsLoRA alpha/sqrt(r)" : ", alpha/r");
    printf("dropout              %g\n", (double)c->dropout);
    printf("targets              %s\n", targets);
}

static void print_adapter_text(const char *dir, const adapter_desc *d) {
    printf("adapter              %s\n", dir);
    printf("base model           %s\n", *d->base_model ? d->base_model : "(not recorded)");
    print_lora_text(&d->cfg);
    printf("tensors              %d (%d layers)\n", d->n_tensors, d->n_layers);
    printf("parameters           %zu (%.1f KiB as fp32)\n", d->n_params,
           (double)d->n_params * 4.0 / 1024.0);
}

static int print_json(cJSON *o, const char *path) {
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!s) return err_set("%s: out of memory", path);
    printf("%s\n", s);
    free(s);
    return 0;
}

int adapter_dir_matches(const char *path) { return dir_is_peft_adapter(path); }

int adapter_dir_print(const char *path, int json) {
    adapter_desc d;
    if (adapter_describe(path, &d)) return -1;
    if (!json) {
        print_adapter_text(path, &d);
        return 0;
    }
    cJSON *o = adapter_json(path, &d);
    cJSON_AddStringToObject(o, "kind", "adapter");
    return print_json(o, path);
}

int checkpoint_dir_matches(const char *path) { return dir_is_checkpoint(path) || dir_is_run(path); }

static const cJSON *get(const cJSON *o, const char *a, const char *b) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, a);
    return b ? cJSON_GetObjectItemCaseSensitive(v, b) : v;
}

static const char *cfg_str(const cJSON *c, const char *a, const char *b) {
    const cJSON *v = get(c, a, b);
    return cJSON_IsString(v) ? v->valuestring : "-";
}

static double cfg_num(const cJSON *c, const char *a, const char *b) {
    const cJSON *v = get(c, a, b);
    return cJSON_IsNumber(v) ? v->valuedouble : 0.0;
}

static void print_config_text(const cJSON *c) {
#define STR(a, b) cfg_str(c, a, b)
#define NUM(a, b) cfg_num(c, a, b)
    printf("model                %s\n", STR("model", NULL));
    printf("data                 train %s", STR("data", "train"));
    printf(", val %s\n", STR("data", "val"));
    char targets[128] = "";
    const cJSON *t;
    cJSON_ArrayForEach(t, get(c, "lora", "targets")) if (cJSON_IsString(t))
        snprintf(targets + strlen(targets), sizeof targets - strlen(targets), "%s%s",
                 *targets ? " " : "", t->valuestring);
    printf("lora                 r %g, alpha %g, dropout %g, targets %s\n", NUM("lora", "r"),
           NUM("lora", "alpha"), NUM("lora", "dropout"), targets);
    printf("optim                lr %g, weight_decay %g, grad_clip %g\n", NUM("optim", "lr"),
           NUM("optim", "weight_decay"), NUM("optim", "grad_clip"));
    printf("schedule             %s, warmup %g steps\n", STR("schedule", "decay"),
           NUM("schedule", "warmup_steps"));
    printf("batch                %g x %g tokens, grad_accum %g\n", NUM("batch", "micro_batch"),
           NUM("batch", "seq_len"), NUM("batch", "grad_accum"));
    printf("steps                %g (seed %g)\n", NUM("steps", NULL), NUM("seed", NULL));
#undef STR
#undef NUM
}

int checkpoint_dir_print(const char *path, int json) {
    char dir[4096];
    if (dir_is_checkpoint(path)) snprintf(dir, sizeof dir, "%s", path);
    else if (checkpoint_latest(path, dir, sizeof dir)) return -1;
    char state[4200], adapter[4200];
    snprintf(state, sizeof state, "%s/state.h5", dir);
    snprintf(adapter, sizeof adapter, "%s/adapter", dir);
    train_state st;
    if (train_state_read_meta(state, &st)) return -1;
    train_state_warn_unchecked(&st, state);
    cJSON *cfg = cJSON_Parse(st.config_json);
    int rc = 0;
    adapter_desc d;
    int has_adapter = dir_is_peft_adapter(adapter);
    if (!cfg) rc = err_set("%s: config: not valid JSON", state);
    else if (has_adapter) rc = adapter_describe(adapter, &d);
    if (!rc && !json) {
        printf("checkpoint           %s\n", dir);
        printf("step                 %lld\n", (long long)st.step);
        printf("tokens seen          %lld\n", (long long)st.tokens_seen);
        printf("elapsed              %.1f s\n", st.elapsed_s);
        printf("base fingerprint     %s\n", st.model_fingerprint);
        printf("state format         %lld, written by medtune %s (this is %s)\n",
               (long long)st.format_version, st.medtune_version[0] ? st.medtune_version : "unknown",
               MEDTUNE_VERSION);
        if (st.threads > 0) printf("threads              %lld\n", (long long)st.threads);
        if (st.best_step > 0)
            printf("best                 step %lld, %s %.17g (checkpoints/best); %lld "
                   "evaluations since\n",
                   (long long)st.best_step, cfg_str(cfg, "best", "metric"), st.best_score,
                   (long long)st.evals_since_best);
        print_config_text(cfg);
        if (has_adapter) print_adapter_text(adapter, &d);
    } else if (!rc) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "kind", "checkpoint");
        cJSON_AddStringToObject(o, "path", dir);
        cJSON_AddNumberToObject(o, "step", (double)st.step);
        cJSON_AddNumberToObject(o, "tokens_seen", (double)st.tokens_seen);
        cJSON_AddNumberToObject(o, "elapsed_s", st.elapsed_s);
        cJSON_AddStringToObject(o, "model_fingerprint", st.model_fingerprint);
        cJSON_AddNumberToObject(o, "format_version", (double)st.format_version);
        if (st.medtune_version[0]) cJSON_AddStringToObject(o, "medtune_version", st.medtune_version);
        if (st.threads > 0) cJSON_AddNumberToObject(o, "threads", (double)st.threads);
        if (st.best_step > 0) {
            cJSON *b = cJSON_AddObjectToObject(o, "best");
            cJSON_AddStringToObject(b, "metric", cfg_str(cfg, "best", "metric"));
            cJSON_AddNumberToObject(b, "step", (double)st.best_step);
            cJSON_AddNumberToObject(b, "score", st.best_score);
            cJSON_AddNumberToObject(b, "evals_since_best", (double)st.evals_since_best);
        }
        cJSON_AddItemToObject(o, "config", cJSON_Duplicate(cfg, 1));
        if (has_adapter) cJSON_AddItemToObject(o, "adapter", adapter_json(adapter, &d));
        rc = print_json(o, path);
    }
    cJSON_Delete(cfg);
    train_state_free(&st);
    return rc;
}
