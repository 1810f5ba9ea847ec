#include "export/export_source.h"
#include "export/hf_tokenizer.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoints/peft.h"
#include "checkpoints/run_dir.h"
#include "checkpoints/state.h"
#include "common/error.h"
#include "common/fileio.h"
#include "optim/adamw.h"
#include "model/model_load.h"
#include "train/train_config.h"

static int dir_has(const char *dir, const char *name) {
    char p[4096];
    return path_is_dir(dir) && !path_join(p, sizeof p, dir, name) && path_exists(p);
}

int dir_is_peft_adapter(const char *dir) { return dir_has(dir, "adapter_config.json"); }
int dir_is_checkpoint(const char *dir) { return dir_has(dir, "state.h5"); }

int dir_is_run(const char *dir) {
    char p[4096];
    if (path_join(p, sizeof p, dir, "adapter")) return 0;
    return dir_has(dir, "config.json") &&
           (dir_has(dir, "checkpoints/latest") || dir_is_peft_adapter(p));
}

int export_peft_write(const export_source *s, const char *out) {
    if (path_exists(out) && !(path_is_dir(out) && (dir_is_empty(out) || dir_is_peft_adapter(out))))
        return err_set("%s: exists and is not a PEFT adapter directory (export replaces the whole "
                       "directory)",
                       out);
    char partial[4096];
    if (dir_partial_begin(partial, sizeof partial, out)) return -1;
    int rc = peft_adapter_write(partial, &s->a, s->base_model);
    // A GGUF base has no tokenizer files AutoTokenizer could read: the adapter directory carries
    // them, as trainers save the tokenizer beside the adapter.
    if (!rc && !path_is_dir(s->base_model))
        rc = hf_tokenizer_write(s->base_model, partial, s->mc.max_position_embeddings);
    if (!rc && !dir_publish(partial, out)) return 0;
    // Keep the error that stopped the export, not one from the cleanup.
    char msg[2048];
    snprintf(msg, sizeof msg, "%s", err_msg());
    dir_remove_recursive(partial);
    return err_set("%s", msg);
}

int base_model_config(const char *path, model_config *cfg) {
    if (path_is_dir(path)) {
        char p[4096];
        if (path_join(p, sizeof p, path, "config.json")) return -1;
        if (!path_exists(p)) return err_set("%s: not a model directory (no config.json)", path);
        char *text;
        size_t len;
        if (file_read_all(p, &text, &len)) return -1;
        int rc = model_config_from_hf_json(cfg, text, len, p);
        free(text);
        return rc;
    }
    if (!path_exists(path)) return err_set("%s: base model not found", path);
    return model_config_load_gguf(cfg, path);
}

// The run's `model` key from a resolved config JSON text; `what` names the text in errors.
static int config_model(const char *json, const char *what, char *out, size_t n) {
    cJSON *j = cJSON_Parse(json);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "model");
    int rc = 0;
    if (!cJSON_IsString(m) || !*m->valuestring)
        rc = err_set("%s: no \"model\" key naming the base model", what);
    else if (snprintf(out, n, "%s", m->valuestring) >= (int)n)
        rc = err_set("%s: model path too long", what);
    cJSON_Delete(j);
    return rc;
}

static int adapter_base_model(const char *dir, char *out, size_t n) {
    if (peft_adapter_read_base_model(dir, out, n)) return -1;
    if (!*out)
        return err_set("%s/adapter_config.json: base_model_name_or_path is empty; pass --model",
                       dir);
    return 0;
}

static int set_base(export_source *s, const char *model, const char *from) {
    if (model) snprintf(s->base_model, sizeof s->base_model, "%s", model);
    if (!path_exists(s->base_model))
        return err_set("%s: base model '%s' (from %s) is not a local model directory or .gguf "
                       "file; pass --model",
                       s->path, s->base_model, model ? "--model" : from);
    return base_model_config(s->base_model, &s->mc);
}

static int load_checkpoint(export_source *s, const char *model) {
    char state[4200];
    snprintf(state, sizeof state, "%s/state.h5", s->path);
    train_state st;
    if (train_state_read_meta(state, &st)) return -1;
    train_state_warn_unchecked(&st, state);
    s->step = st.step;
    s->tokens_seen = st.tokens_seen;
    train_config tc;
    cJSON *j = cJSON_Parse(st.config_json);
    int rc = config_model(st.config_json, state, s->base_model, sizeof s->base_model);
    if (!rc) rc = train_config_from_json(&tc, j, state);
    cJSON_Delete(j);
    train_state_free(&st);
    if (rc || set_base(s, model, "the checkpoint's config")) return -1;
    if (lora_adapter_init(&s->a, &s->mc, &tc.lora)) return err_prefix("%s", state);
    // state.h5 also holds the AdamW moments; they are read (and checked) with the weights.
    adamw_state opt;
    if (adamw_init(&opt, &tc.optim, s->a.n_params)) return -1;
    rc = train_state_read_tensors(state, &s->a, &opt);
    adamw_free(&opt);
    return rc;
}

static int load_adapter(export_source *s, const char *model, const char *run_config) {
    if (run_config) {
        char *text;
        if (file_read_all(run_config, &text, NULL)) return -1;
        int rc = config_model(text, run_config, s->base_model, sizeof s->base_model);
        free(text);
        if (rc) return -1;
    } else if (!model && adapter_base_model(s->path, s->base_model, sizeof s->base_model)) {
        return -1;
    }
    if (set_base(s, model, run_config ? "the run's config.json" : "adapter_config.json"))
        return -1;
    return peft_adapter_load(s->path, &s->mc, &s->a);
}

int export_source_load(export_source *s, const char *path, const char *model) {
    memset(s, 0, sizeof *s);
    s->step = s->tokens_seen = -1;
    if (!path_exists(path)) return err_set("%s: no such file or directory", path);
    if (snprintf(s->path, sizeof s->path, "%s", path) >= (int)sizeof s->path)
        return err_set("%s: path too long", path);
    int rc;
    if (dir_is_checkpoint(path)) {
        s->kind = EXPORT_SOURCE_CHECKPOINT;
        rc = load_checkpoint(s, model);
    } else if (dir_is_peft_adapter(path)) {
        s->kind = EXPORT_SOURCE_ADAPTER;
        rc = load_adapter(s, model, NULL);
    } else if (dir_is_run(path)) {
        char latest[4096], cfg[4200];
        snprintf(cfg, sizeof cfg, "%s/config.json", path);
        if (dir_has(path, "checkpoints/latest")) {
            // A checkpoint is written at the last step too, so the latest one is the newest
            // state whether the run finished or stopped.
            if (checkpoint_latest(path, latest, sizeof latest)) return -1;
            snprintf(s->path, sizeof s->path, "%s", latest);
            s->kind = EXPORT_SOURCE_CHECKPOINT;
            rc = load_checkpoint(s, model);
        } else {
            snprintf(s->path, sizeof s->path, "%s/adapter", path);
            s->kind = EXPORT_SOURCE_ADAPTER;
            rc = load_adapter(s, model, cfg);
        }
    } else {
        return err_set("%s: not a checkpoint (state.h5), run directory (checkpoints/latest) or "
                       "PEFT adapter directory (adapter_config.json)",
                       path);
    }
    if (rc) export_source_free(s);
    return rc;
}

void export_source_free(export_source *s) {
    lora_adapter_free(&s->a);
    memset(&s->a, 0, sizeof s->a);
}
