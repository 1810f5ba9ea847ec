#include "train/train_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/error.h"

static const char *const KEYS_ROOT[] = {
    "model", "init_adapter", "data", "lora", "optim", "schedule", "batch", "steps", "epochs",
    "shuffle", "seed", "threads", "eval_every", "eval_batches", "save_every", "keep_last",
    "out_dir", "doc_attention", NULL};
static const char *const KEYS_DATA[] = {"train", "val", "replay", "replay_ratio", NULL};
static const char *const KEYS_LORA[] = {"r", "alpha", "dropout", "targets", "use_rslora", NULL};
static const char *const KEYS_OPTIM[] = {"lr", "beta1", "beta2", "eps", "weight_decay",
                                         "grad_clip", NULL};
static const char *const KEYS_SCHEDULE[] = {"warmup_steps", "decay", "min_lr_ratio", NULL};
static const char *const KEYS_BATCH[] = {"micro_batch", "seq_len", "grad_accum", NULL};

static int get_path(const config *c, const char *key, const char *def, int required, char *out) {
    const char *s;
    if (config_string(c, key, def, &s)) return -1;
    if (required && (!s || !*s)) return err_set("%s: %s: required", c->name, key);
    if (snprintf(out, TRAIN_PATH_MAX, "%s", s ? s : "") >= TRAIN_PATH_MAX)
        return err_set("%s: %s: path too long", c->name, key);
    return 0;
}

static int get_int_range(const config *c, const char *key, long long def, long long lo,
                         long long hi, long long *out) {
    if (config_int(c, key, def, out)) return -1;
    if (*out < lo || *out > hi)
        return err_set("%s: %s: %lld is out of range [%lld, %lld]", c->name, key, *out, lo, hi);
    return 0;
}

static int get_float_range(const config *c, const char *key, double def, double lo, double hi,
                           float *out) {
    double v;
    if (config_number(c, key, def, &v)) return -1;
    if (!(v >= lo && v <= hi))
        return err_set("%s: %s: %g is out of range [%g, %g]", c->name, key, v, lo, hi);
    *out = (float)v;
    return 0;
}

static int parse_targets(const config *c, uint32_t *targets) {
    const cJSON *arr = config_find(c, "lora.targets");
    *targets = 0;
    if (!arr || cJSON_IsNull(arr)) {
        *targets = (1u << LORA_N_TARGETS) - 1;
        return 0;
    }
    if (cJSON_IsString(arr) && !strcmp(arr->valuestring, "all-linear")) {
        *targets = (1u << LORA_N_TARGETS) - 1;
        return 0;
    }
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) == 0)
        return err_set("%s: lora.targets: must be a non-empty list of projection names", c->name);
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        int t = cJSON_IsString(it) ? lora_target_from_name(it->valuestring) : -1;
        if (t < 0)
            return err_set("%s: lora.targets: unknown target %s (known: q_proj k_proj v_proj o_proj "
                           "gate_proj up_proj down_proj)",
                           c->name, cJSON_IsString(it) ? it->valuestring : "(not a string)");
        *targets |= 1u << t;
    }
    return 0;
}

static int parse(train_config *tc, const config *c) {
    memset(tc, 0, sizeof *tc);
    const char *const *groups[] = {KEYS_ROOT, KEYS_DATA, KEYS_LORA, KEYS_OPTIM, KEYS_SCHEDULE,
                                   KEYS_BATCH};
    const char *paths[] = {"", "data", "lora", "optim", "schedule", "batch"};
    for (int i = 0; i < 6; i++)
        if (config_check_keys(c, paths[i], groups[i])) return -1;
    long long v;
    double d;
    int b;
    const char *s;
    if (get_path(c, "model", NULL, 1, tc->model) || get_path(c, "init_adapter", "", 0, tc->init_adapter) ||
        get_path(c, "data.train", NULL, 1, tc->data_train) ||
        get_path(c, "data.val", "", 0, tc->data_val) ||
        get_path(c, "data.replay", "", 0, tc->data_replay) ||
        get_path(c, "out_dir", NULL, 1, tc->out_dir))
        return -1;
    if (config_number(c, "data.replay_ratio", 0.0, &d)) return -1;
    if (!(d >= 0.0 && d < 1.0))
        return err_set("%s: data.replay_ratio: %g must be in [0, 1)", c->name, d);
    if (d > 0.0 && !tc->data_replay[0])
        return err_set("%s: data.replay_ratio: set, but data.replay names no shard directory",
                       c->name);
    tc->replay_ratio = tc->data_replay[0] ? (d > 0.0 ? d : 0.0) : 0.0;

    if (get_int_range(c, "lora.r", 16, 1, 4096, &v)) return -1;
    tc->lora.r = (int)v;
    if (get_float_range(c, "lora.alpha", 2.0 * tc->lora.r, 1e-6, 1e6, &tc->lora.alpha) ||
        get_float_range(c, "lora.dropout", 0.05, 0.0, 0.99, &tc->lora.dropout))
        return -1;
    if (config_bool(c, "lora.use_rslora", 0, &b)) return -1;
    tc->lora.use_rslora = b;
    if (parse_targets(c, &tc->lora.targets)) return -1;

    if (get_float_range(c, "optim.lr", 2e-4, 0.0, 10.0, &tc->optim.lr) ||
        get_float_range(c, "optim.beta1", 0.9, 0.0, 0.999999, &tc->optim.beta1) ||
        get_float_range(c, "optim.beta2", 0.999, 0.0, 0.999999, &tc->optim.beta2) ||
        get_float_range(c, "optim.eps", 1e-8, 0.0, 1.0, &tc->optim.eps) ||
        get_float_range(c, "optim.weight_decay", 0.0, 0.0, 10.0, &tc->optim.weight_decay) ||
        get_float_range(c, "optim.grad_clip", 1.0, 0.0, 1e9, &tc->grad_clip))
        return -1;

    if (get_int_range(c, "schedule.warmup_steps", 0, 0, 1LL << 40, &v)) return -1;
    tc->warmup_steps = v;
    if (config_string(c, "schedule.decay", "cosine", &s)) return -1;
    int decay = schedule_decay_from_name(s);
    if (decay < 0)
        return err_set("%s: schedule.decay: unknown '%s' (known: constant, linear, cosine)",
                       c->name, s);
    tc->decay = (schedule_decay)decay;
    if (get_float_range(c, "schedule.min_lr_ratio", 0.0, 0.0, 1.0, &tc->min_lr_ratio)) return -1;

    if (get_int_range(c, "batch.micro_batch", 4, 1, 1 << 16, &v)) return -1;
    tc->micro_batch = (int)v;
    if (get_int_range(c, "batch.seq_len", 512, 1, 1 << 20, &v)) return -1;
    tc->seq_len = (int)v;
    if (get_int_range(c, "batch.grad_accum", 1, 1, 1 << 16, &v)) return -1;
    tc->grad_accum = (int)v;

    const cJSON *steps = config_find(c, "steps"), *epochs = config_find(c, "epochs");
    int has_steps = steps && !cJSON_IsNull(steps), has_epochs = epochs && !cJSON_IsNull(epochs);
    if (has_steps && has_epochs)
        return err_set("%s: steps and epochs: give one of them, not both", c->name);
    if (get_int_range(c, "steps", 0, 0, 1LL << 40, &v)) return -1;
    tc->steps = v;
    if (get_int_range(c, "epochs", has_steps ? 0 : 1, 0, 1 << 20, &v)) return -1;
    tc->epochs = (int)v;
    if (has_steps && tc->steps == 0) return err_set("%s: steps: must be positive", c->name);
    if (!has_steps && tc->epochs == 0) return err_set("%s: epochs: must be positive", c->name);

    if (config_bool(c, "shuffle", 1, &b)) return -1;
    tc->shuffle = b;
    if (get_int_range(c, "seed", 42, 0, 1LL << 53, &v)) return -1;
    tc->seed = (uint64_t)v;
    if (get_int_range(c, "threads", 0, 0, 1024, &v)) return -1;
    tc->threads = (int)v;
    if (get_int_range(c, "eval_every", 0, 0, 1LL << 40, &v)) return -1;
    tc->eval_every = v;
    if (get_int_range(c, "eval_batches", 8, 1, 1LL << 30, &v)) return -1;
    tc->eval_batches = v;
    if (get_int_range(c, "save_every", 100, 0, 1LL << 40, &v)) return -1;
    tc->save_every = v;
    if (get_int_range(c, "keep_last", 3, 1, 1 << 20, &v)) return -1;
    tc->keep_last = (int)v;
    if (config_string(c, "doc_attention", "causal", &s)) return -1;
    if (!strcmp(s, "causal")) tc->doc_attention = DOC_ATTENTION_CAUSAL;
    else if (!strcmp(s, "document")) tc->doc_attention = DOC_ATTENTION_DOCUMENT;
    else return err_set("%s: doc_attention: unknown '%s' (known: causal, document)", c->name, s);
    return 0;
}

int train_config_load(train_config *tc, const char *path, char **sets, int n_sets) {
    config c;
    if (config_load(&c, path)) return -1;
    for (int i = 0; i < n_sets; i++) {
        if (config_set(&c, sets[i])) {
            config_free(&c);
            return err_prefix("%s", path);
        }
        // steps and epochs are two ways to say the run length: setting one replaces the other.
        if (!strncmp(sets[i], "steps=", 6)) cJSON_DeleteItemFromObject(c.root, "epochs");
        if (!strncmp(sets[i], "epochs=", 7)) cJSON_DeleteItemFromObject(c.root, "steps");
    }
    int rc = parse(tc, &c);
    config_free(&c);
    return rc;
}

int train_config_from_json(train_config *tc, const cJSON *json, const char *name) {
    config c = {.root = (cJSON *)json};
    snprintf(c.name, sizeof c.name, "%s", name);
    return parse(tc, &c);
}

// A float as the shortest decimal that reads back to it ("0.0002", not 0.000199999994947575).
static cJSON *add_float(cJSON *obj, const char *key, float v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%.9g", (double)v);
    for (int digits = 1; digits < 9; digits++) {
        char shorter[32];
        snprintf(shorter, sizeof shorter, "%.*g", digits, (double)v);
        if ((float)strtod(shorter, NULL) == v) {
            memcpy(buf, shorter, sizeof shorter);
            break;
        }
    }
    return cJSON_AddNumberToObject(obj, key, strtod(buf, NULL));
}

cJSON *train_config_to_json(const train_config *tc) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "model", tc->model);
    if (tc->init_adapter[0]) cJSON_AddStringToObject(j, "init_adapter", tc->init_adapter);
    else cJSON_AddNullToObject(j, "init_adapter");
    cJSON *data = cJSON_AddObjectToObject(j, "data");
    cJSON_AddStringToObject(data, "train", tc->data_train);
    if (tc->data_val[0]) cJSON_AddStringToObject(data, "val", tc->data_val);
    else cJSON_AddNullToObject(data, "val");
    if (tc->data_replay[0]) cJSON_AddStringToObject(data, "replay", tc->data_replay);
    else cJSON_AddNullToObject(data, "replay");
    cJSON_AddNumberToObject(data, "replay_ratio", tc->replay_ratio);
    cJSON *lora = cJSON_AddObjectToObject(j, "lora");
    cJSON_AddNumberToObject(lora, "r", tc->lora.r);
    add_float(lora, "alpha", tc->lora.alpha);
    add_float(lora, "dropout", tc->lora.dropout);
    cJSON *targets = cJSON_AddArrayToObject(lora, "targets");
    for (int t = 0; t < LORA_N_TARGETS; t++)
        if ((tc->lora.targets >> t) & 1u)
            cJSON_AddItemToArray(targets, cJSON_CreateString(LORA_TARGET_NAMES[t]));
    cJSON_AddBoolToObject(lora, "use_rslora", tc->lora.use_rslora);
    cJSON *optim = cJSON_AddObjectToObject(j, "optim");
    add_float(optim, "lr", tc->optim.lr);
    add_float(optim, "beta1", tc->optim.beta1);
    add_float(optim, "beta2", tc->optim.beta2);
    add_float(optim, "eps", tc->optim.eps);
    add_float(optim, "weight_decay", tc->optim.weight_decay);
    add_float(optim, "grad_clip", tc->grad_clip);
    cJSON *sched = cJSON_AddObjectToObject(j, "schedule");
    cJSON_AddNumberToObject(sched, "warmup_steps", (double)tc->warmup_steps);
    cJSON_AddStringToObject(sched, "decay", schedule_decay_name(tc->decay));
    add_float(sched, "min_lr_ratio", tc->min_lr_ratio);
    cJSON *batch = cJSON_AddObjectToObject(j, "batch");
    cJSON_AddNumberToObject(batch, "micro_batch", tc->micro_batch);
    cJSON_AddNumberToObject(batch, "seq_len", tc->seq_len);
    cJSON_AddNumberToObject(batch, "grad_accum", tc->grad_accum);
    if (tc->steps > 0) {
        cJSON_AddNumberToObject(j, "steps", (double)tc->steps);
        cJSON_AddNullToObject(j, "epochs");
    } else {
        cJSON_AddNullToObject(j, "steps");
        cJSON_AddNumberToObject(j, "epochs", tc->epochs);
    }
    cJSON_AddBoolToObject(j, "shuffle", tc->shuffle);
    cJSON_AddNumberToObject(j, "seed", (double)tc->seed);
    cJSON_AddNumberToObject(j, "threads", tc->threads);
    cJSON_AddNumberToObject(j, "eval_every", (double)tc->eval_every);
    cJSON_AddNumberToObject(j, "eval_batches", (double)tc->eval_batches);
    cJSON_AddNumberToObject(j, "save_every", (double)tc->save_every);
    cJSON_AddNumberToObject(j, "keep_last", tc->keep_last);
    cJSON_AddStringToObject(j, "out_dir", tc->out_dir);
    cJSON_AddStringToObject(j, "doc_attention",
                            tc->doc_attention == DOC_ATTENTION_DOCUMENT ? "document" : "causal");
    return j;
}

// Settings a resumed run may change: they affect how long the run goes and what it writes,
// not the value of any step. Files are compared by content (model and data fingerprints in
// the checkpoint), not by path, so a moved model or shard directory still resumes.
static const char *const RESUME_FREE_KEYS[] = {
    "steps", "epochs", "eval_every", "save_every", "keep_last", "out_dir", "model",
    "init_adapter", "data.train", "data.val", "data.replay", NULL};

static int resume_free(const char *key) {
    for (const char *const *k = RESUME_FREE_KEYS; *k; k++)
        if (!strcmp(*k, key)) return 1;
    return 0;
}

static int compare_nodes(const cJSON *a, const cJSON *b, const char *prefix) {
    for (const cJSON *ia = a->child; ia; ia = ia->next) {
        char key[256];
        snprintf(key, sizeof key, "%s%s%s", prefix, *prefix ? "." : "", ia->string);
        if (resume_free(key)) continue;
        const cJSON *ib = cJSON_GetObjectItemCaseSensitive(b, ia->string);
        if (cJSON_IsObject(ia) && cJSON_IsObject(ib)) {
            if (compare_nodes(ia, ib, key)) return -1;
            continue;
        }
        if (!ib || !cJSON_Compare(ia, ib, 1)) {
            char *sa = cJSON_PrintUnformatted(ia), *sb = ib ? cJSON_PrintUnformatted(ib) : NULL;
            err_set("%s: the checkpoint was trained with %s, the config now says %s", key, sa,
                    sb ? sb : "nothing");
            free(sa);
            free(sb);
            return -1;
        }
    }
    return 0;
}

int train_config_compare_for_resume(const train_config *saved, const train_config *now) {
    cJSON *a = train_config_to_json(saved), *b = train_config_to_json(now);
    int rc = compare_nodes(a, b, "");
    cJSON_Delete(a);
    cJSON_Delete(b);
    return rc;
}
