// The `medtune train` config: one table of keys (KEYS) gives the accepted keys, their types,
// defaults, ranges and meanings; parsing, the resolved config.json, the resume check and
// `medtune train --help` all read it.
#include "train/train_config.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/error.h"
#include "common/json_number.h"

// Names of the CHOICE keys' enums, indexed by the enum values.
static const char *const DECAY_NAMES[] = {[SCHEDULE_CONSTANT] = "constant",
                                           [SCHEDULE_LINEAR] = "linear",
                                           [SCHEDULE_COSINE] = "cosine", NULL};
static const char *const BASE_DTYPE_NAMES[] = {
    [BASE_DTYPE_KEEP] = "keep", [BASE_DTYPE_BF16] = "bf16", [BASE_DTYPE_Q8_0] = "q8_0", NULL};
static const char *const DOC_ATTENTION_NAMES[] = {
    [DOC_ATTENTION_CAUSAL] = "causal", [DOC_ATTENTION_DOCUMENT] = "document", NULL};
static const char *const OBJECTIVE_NAMES[] = {[OBJECTIVE_SFT] = "sft", [OBJECTIVE_CPT] = "cpt",
                                              [OBJECTIVE_DPO] = "dpo",
                                              [OBJECTIVE_ORPO] = "orpo", NULL};
static const char *const DPO_LOSS_NAMES[] = {[DPO_LOSS_SIGMOID] = "sigmoid",
                                             [DPO_LOSS_IPO] = "ipo", [DPO_LOSS_HINGE] = "hinge",
                                             NULL};
// CHOICE values are stored through an int.
_Static_assert(sizeof(objective_kind) == sizeof(int), "objective_kind is stored as an int");
_Static_assert(sizeof(dpo_loss_kind) == sizeof(int), "dpo_loss_kind is stored as an int");
_Static_assert(sizeof(schedule_decay) == sizeof(int), "schedule_decay is stored as an int");
_Static_assert(sizeof(doc_attention_mode) == sizeof(int), "doc_attention_mode is stored as an int");
_Static_assert(sizeof(base_dtype) == sizeof(int), "base_dtype is stored as an int");

static double alpha_default(const train_config *tc) { return 2.0 * tc->lora.r; }

#define OFF(field) offsetof(train_config, field)
#define FREE TRAIN_KEY_RESUME_FREE
#define NULL0 TRAIN_KEY_ZERO_IS_NULL
#define T40 1099511627776.0  // 2^40 steps: more than any run, small enough for exact doubles

static const train_config_key KEYS[] = {
    {"model", TRAIN_KEY_PATH, "required", "base model: HF directory or `.gguf` file",
     .offset = OFF(model), .flags = FREE},
    {"base_dtype", TRAIN_KEY_CHOICE, "`keep`",
     "type a Hugging Face base's matrices are held in: `keep` (as stored: F32, F16 or BF16), "
     "`bf16` or `q8_0` (converted at load); a GGUF base is always kept as stored",
     .choices = BASE_DTYPE_NAMES, .offset = OFF(base_dtype)},
    {"init_adapter", TRAIN_KEY_PATH, "none",
     "PEFT adapter directory to start from (r/alpha/targets must match `lora`)",
     .offset = OFF(init_adapter), .flags = FREE},
    {"data.train", TRAIN_KEY_PATH, "required", "shard directory; its `train` split is trained on",
     .offset = OFF(data_train), .flags = FREE},
    {"data.val", TRAIN_KEY_PATH, "`data.train`", "shard directory whose `val` split is evaluated",
     .offset = OFF(data_val), .flags = FREE},
    {"data.replay", TRAIN_KEY_PATH, "none",
     "shard directory (its `train` split) mixed into every batch", .offset = OFF(data_replay),
     .flags = FREE},
    {"data.replay_ratio", TRAIN_KEY_DOUBLE, "0",
     "share of windows taken from `data.replay`, in [0, 1)",
     0.0, 1.0, .offset = OFF(replay_ratio), .flags = TRAIN_KEY_MAX_OPEN},
    {"lora.r", TRAIN_KEY_INT, "16", "rank", 1, 4096, .offset = OFF(lora.r)},
    {"lora.alpha", TRAIN_KEY_FLOAT, "2 r", "scale numerator", 1e-6, 1e6, .rule = alpha_default,
     .offset = OFF(lora.alpha)},
    {"lora.dropout", TRAIN_KEY_FLOAT, "0.05", "dropout on the LoRA branch input", 0.0, 0.99,
     .offset = OFF(lora.dropout)},
    {"lora.targets", TRAIN_KEY_TARGETS, "`all-linear`",
     "list of the model's module names: `q_proj k_proj v_proj o_proj gate_proj up_proj down_proj` "
     "(llama, mistral, qwen2, qwen3, gemma3), `qkv_proj o_proj gate_up_proj down_proj` (phi3), "
     "`c_attn c_proj c_fc` (gpt2), or `all-linear` / `[\"all-linear\"]` (every linear layer but "
     "the output head)",
     .offset = OFF(lora.targets)},
    {"lora.use_rslora", TRAIN_KEY_BOOL, "false", "scale alpha/sqrt(r) instead of alpha/r",
     .offset = OFF(lora.use_rslora)},
    {"optim.lr", TRAIN_KEY_FLOAT, "2e-4", "peak learning rate", 0.0, 10.0, .offset = OFF(optim.lr)},
    {"optim.beta1", TRAIN_KEY_FLOAT, "0.9", "AdamW beta1", 0.0, 0.999999,
     .offset = OFF(optim.beta1)},
    {"optim.beta2", TRAIN_KEY_FLOAT, "0.999", "AdamW beta2", 0.0, 0.999999,
     .offset = OFF(optim.beta2)},
    {"optim.eps", TRAIN_KEY_FLOAT, "1e-8", "AdamW epsilon", 0.0, 1.0, .offset = OFF(optim.eps)},
    {"optim.weight_decay", TRAIN_KEY_FLOAT, "0", "decoupled weight decay", 0.0, 10.0,
     .offset = OFF(optim.weight_decay)},
    {"optim.grad_clip", TRAIN_KEY_FLOAT, "1.0", "max global gradient norm (0 = no clipping)", 0.0,
     1e9, .offset = OFF(grad_clip)},
    {"schedule.warmup_steps", TRAIN_KEY_INT64, "0", "linear warmup from 0", 0, T40,
     .offset = OFF(warmup_steps)},
    {"schedule.decay", TRAIN_KEY_CHOICE, "`cosine`", "`constant`, `linear` or `cosine`",
     .choices = DECAY_NAMES, .offset = OFF(decay)},
    {"schedule.min_lr_ratio", TRAIN_KEY_FLOAT, "0", "floor of the decay as a share of `optim.lr`",
     0.0, 1.0, .offset = OFF(min_lr_ratio)},
    {"batch.micro_batch", TRAIN_KEY_INT, "4", "windows per forward/backward", 1, 1 << 16,
     .offset = OFF(micro_batch)},
    {"batch.seq_len", TRAIN_KEY_INT, "512", "tokens per window", 1, 1 << 20,
     .offset = OFF(seq_len)},
    // Free on resume: a run resumed on another number of ranks keeps its global batch
    // (micro_batch x grad_accum x ranks) by changing grad_accum (docs/training.md).
    {"batch.grad_accum", TRAIN_KEY_INT, "1", "micro-batches per optimizer step (per rank)", 1,
     1 << 16, .offset = OFF(grad_accum), .flags = FREE},
    {"steps", TRAIN_KEY_INT64, "none", "optimizer steps (give `steps` or `epochs`)", 1, T40,
     .offset = OFF(steps), .flags = FREE | NULL0},
    {"epochs", TRAIN_KEY_INT, "1 (without `steps`)", "passes over the train windows", 1, 1 << 20,
     .offset = OFF(epochs), .flags = FREE | NULL0},
    {"shuffle", TRAIN_KEY_BOOL, "true", "seeded permutation of the windows per epoch",
     .offset = OFF(shuffle)},
    {"seed", TRAIN_KEY_UINT64, "42", "LoRA init, shuffling, replay order, dropout masks", 0,
     9007199254740992.0, .offset = OFF(seed)},
    {"threads", TRAIN_KEY_INT, "0 (all cores)",
     "OpenMP threads; results do not depend on it, a resume may change it",
     0, 1024, .offset = OFF(threads), .flags = FREE},
    {"eval_every", TRAIN_KEY_INT64, "0", "evaluate every N steps (and before step 1); 0 = never", 0,
     T40, .offset = OFF(eval_every), .flags = FREE},
    {"eval_batches", TRAIN_KEY_INT64, "8", "micro-batches per evaluation", 1, 1 << 30,
     .offset = OFF(eval_batches)},
    {"save_every", TRAIN_KEY_INT64, "100",
     "checkpoint every N steps (and always at the end); 0 = only at the end", 0, T40,
     .offset = OFF(save_every), .flags = FREE},
    {"keep_last", TRAIN_KEY_INT, "3",
     "complete checkpoints kept (and the one `checkpoints/best` names)", 1, 1 << 20,
     .offset = OFF(keep_last), .flags = FREE},
    {"out_dir", TRAIN_KEY_PATH, "required", "run directory", .offset = OFF(out_dir), .flags = FREE},
    {"doc_attention", TRAIN_KEY_CHOICE, "`causal`",
     "`causal` or `document` (attention and positions per packed document)",
     .choices = DOC_ATTENTION_NAMES, .offset = OFF(doc_attention)},
    // Free on resume: recompute changes memory and time, not a bit of any step.
    {"recompute", TRAIN_KEY_BOOL, "false",
     "keep only each layer's input and run the layer again in backward (less memory, about "
     "a third more time)",
     .offset = OFF(recompute), .flags = FREE},
    {"eval_mcq", TRAIN_KEY_MCQ, "none",
     "list of `{path, format, limit, name}` multiple-choice sets scored at each evaluation",
     .offset = OFF(eval_mcq)},
    {"best.metric", TRAIN_KEY_METRIC, "none",
     "`val_loss` (lower is better) or `mcq:<name>` (acc, higher is better): kept as "
     "`checkpoints/best`",
     .offset = OFF(best_metric)},
    {"best.patience", TRAIN_KEY_INT, "0",
     "stop after this many evaluations without improvement of `best.metric`; 0 = never", 0,
     1 << 30, .offset = OFF(best_patience), .flags = FREE},
    {"objective", TRAIN_KEY_CHOICE, "`sft`",
     "`sft` or `cpt` (next-token loss on the tokens prep marked trained), `dpo` or `orpo` "
     "(preference-pair shards)",
     .choices = OBJECTIVE_NAMES, .offset = OFF(objective)},
    {"dpo.beta", TRAIN_KEY_DOUBLE, "0.1", "DPO beta (> 0): strength of the reference constraint",
     0.0, 1e6, .offset = OFF(dpo_beta)},
    {"dpo.loss", TRAIN_KEY_CHOICE, "`sigmoid`", "`sigmoid`, `ipo` or `hinge` (TRL's loss_type)",
     .choices = DPO_LOSS_NAMES, .offset = OFF(dpo_loss)},
    {"dpo.label_smoothing", TRAIN_KEY_DOUBLE, "0",
     "conservative DPO: assumed share of flipped labels, in [0, 0.5) (`sigmoid` only)", 0.0, 0.5,
     .offset = OFF(dpo_label_smoothing), .flags = TRAIN_KEY_MAX_OPEN},
    {"orpo.beta", TRAIN_KEY_DOUBLE, "0.1", "ORPO beta (> 0): weight of the odds-ratio term", 0.0,
     1e6, .offset = OFF(orpo_beta)},
};
#define N_KEYS (sizeof KEYS / sizeof KEYS[0])

const train_config_key *train_config_keys(size_t *n) {
    *n = N_KEYS;
    return KEYS;
}

static const train_config_key *key_find(const char *key) {
    for (size_t i = 0; i < N_KEYS; i++)
        if (!strcmp(KEYS[i].key, key)) return &KEYS[i];
    return NULL;
}

// ---- reading -----------------------------------------------------------------------------

// Fails on the first key of `obj` (at dotted path `prefix`, "" for the root) that the table
// does not have, naming it as "unknown key 'data.tran'".
static int check_keys(const config *c, const cJSON *obj, const char *prefix) {
    for (const cJSON *it = obj->child; it; it = it->next) {
        char path[256];
        snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", it->string);
        size_t len = strlen(path);
        int leaf = 0, group = 0;
        for (size_t i = 0; i < N_KEYS; i++) {
            leaf |= !strcmp(KEYS[i].key, path);
            group |= !strncmp(KEYS[i].key, path, len) && KEYS[i].key[len] == '.';
        }
        if (!leaf && !group) return err_set("%s: unknown key '%s'", c->name, path);
        if (group && !cJSON_IsObject(it))
            return err_set("%s: %s: must be an object", c->name, path);
        if (group && check_keys(c, it, path)) return -1;
    }
    return 0;
}

static int present(const config *c, const char *key) {
    const cJSON *v = config_find(c, key);
    return v && !cJSON_IsNull(v);
}

// A number key's value: the config's, else its rule's, else its literal default.
static int read_number(const train_config *tc, const config *c, const train_config_key *k,
                       double *out) {
    int is_int =
        k->type == TRAIN_KEY_INT || k->type == TRAIN_KEY_INT64 || k->type == TRAIN_KEY_UINT64;
    if (present(c, k->key)) {
        long long v;
        if (!is_int) return config_number(c, k->key, 0.0, out);
        if (config_int(c, k->key, 0, &v)) return -1;
        *out = (double)v;
        return 0;
    }
    if (k->rule) {
        *out = k->rule(tc);
        return 0;
    }
    char lit[64], *end;
    config_default_literal(k->def, lit, sizeof lit);
    *out = strtod(lit, &end);
    if (end == lit || *end)
        return err_set("train_config.c: %s: default '%s' is not a number", k->key, k->def);
    return 0;
}

static int check_range(const config *c, const train_config_key *k, double v) {
    return config_check_range(c, k->key, v, k->min, k->max, k->flags & TRAIN_KEY_MAX_OPEN,
                              k->type != TRAIN_KEY_FLOAT && k->type != TRAIN_KEY_DOUBLE);
}

static int store_number(train_config *tc, const config *c, const train_config_key *k) {
    double v;
    if (read_number(tc, c, k, &v) || check_range(c, k, v)) return -1;
    void *dst = (char *)tc + k->offset;
    switch (k->type) {
    case TRAIN_KEY_INT: *(int *)dst = (int)v; break;
    case TRAIN_KEY_INT64: *(int64_t *)dst = (int64_t)v; break;
    case TRAIN_KEY_UINT64: *(uint64_t *)dst = (uint64_t)v; break;
    case TRAIN_KEY_FLOAT: *(float *)dst = (float)v; break;
    default: *(double *)dst = v; break;
    }
    return 0;
}

// A string key's value: the config's, else the literal default.
static int read_string(const config *c, const train_config_key *k, char *lit, size_t n,
                       const char **out) {
    config_default_literal(k->def, lit, n);
    return config_string(c, k->key, lit, out);
}

static int store_path(train_config *tc, const config *c, const train_config_key *k) {
    const char *s;
    int required = !strcmp(k->def, "required");
    if (config_string(c, k->key, "", &s)) return -1;
    if (required && !*s) return err_set("%s: %s: required (%s)", c->name, k->key, k->meaning);
    if (snprintf((char *)tc + k->offset, TRAIN_PATH_MAX, "%s", s) >= TRAIN_PATH_MAX)
        return err_set("%s: %s: path too long", c->name, k->key);
    return 0;
}

static int store_choice(train_config *tc, const config *c, const train_config_key *k) {
    char lit[64];
    const char *s;
    if (read_string(c, k, lit, sizeof lit, &s)) return -1;
    for (int i = 0; k->choices[i]; i++)
        if (!strcmp(k->choices[i], s)) {
            *(int *)((char *)tc + k->offset) = i;
            return 0;
        }
    char known[128] = "";
    for (int i = 0; k->choices[i]; i++)
        snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "",
                 k->choices[i]);
    return err_set("%s: %s: unknown '%s' (known: %s)", c->name, k->key, s, known);
}

static int store_targets(train_config *tc, const config *c, const train_config_key *k) {
    uint32_t *targets = (uint32_t *)((char *)tc + k->offset);
    const cJSON *arr = config_find(c, k->key);
    char lit[64];
    config_default_literal(k->def, lit, sizeof lit);
    const char *name = !arr || cJSON_IsNull(arr) ? lit
                       : cJSON_IsString(arr)       ? arr->valuestring
                                                   : NULL;
    *targets = 0;
    // PEFT's "all-linear", also as a one-element list.
    if (!name && cJSON_IsArray(arr) && cJSON_GetArraySize(arr) == 1 &&
        cJSON_IsString(arr->child) && !strcmp(arr->child->valuestring, "all-linear"))
        name = arr->child->valuestring;
    if (name && !strcmp(name, "all-linear")) {
        *targets = LORA_ALL_LINEAR;
        return 0;
    }
    if (name || !cJSON_IsArray(arr) || cJSON_GetArraySize(arr) == 0)
        return err_set("%s: %s: must be a non-empty list of projection names", c->name, k->key);
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        uint32_t t = cJSON_IsString(it) ? lora_targets_from_name(it->valuestring) : 0;
        if (!t)
            return err_set("%s: %s: unknown target %s (known: q_proj k_proj v_proj o_proj "
                           "gate_proj up_proj down_proj; phi3: qkv_proj gate_up_proj; gpt2: "
                           "c_attn c_proj c_fc)",
                           c->name, k->key,
                           cJSON_IsString(it) ? it->valuestring : "(not a string)");
        *targets |= t;
    }
    return 0;
}

// A name that can stand in a metrics key ("mcq/<name>/acc") and a report chart title.
static int mcq_name_ok(const char *s) {
    size_t n = strlen(s);
    return n > 0 && n < TRAIN_MCQ_NAME_MAX &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
}

// The file name without its folder and its last extension: "data/pubmedqa.json" -> "pubmedqa".
static void file_stem(const char *path, char *out, size_t n) {
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/') len--;
    size_t start = len;
    while (start > 0 && path[start - 1] != '/') start--;
    size_t end = len;
    for (size_t i = len; i > start + 1; i--)
        if (path[i - 1] == '.') {
            end = i - 1;
            break;
        }
    snprintf(out, n, "%.*s", (int)(end - start), path + start);
}

static int store_mcq_entry(train_mcq_set *e, const config *c, const cJSON *it, int i) {
    static const char *const FIELDS[] = {"path", "format", "limit", "name"};
    if (!cJSON_IsObject(it)) return err_set("%s: eval_mcq[%d]: must be an object", c->name, i);
    for (const cJSON *f = it->child; f; f = f->next) {
        int known = 0;
        for (int k = 0; k < 4; k++) known |= !strcmp(f->string, FIELDS[k]);
        if (!known)
            return err_set("%s: eval_mcq[%d]: unknown key '%s' (known: path, format, limit, name)",
                           c->name, i, f->string);
    }
    const cJSON *path = cJSON_GetObjectItemCaseSensitive(it, "path");
    const cJSON *format = cJSON_GetObjectItemCaseSensitive(it, "format");
    const cJSON *limit = cJSON_GetObjectItemCaseSensitive(it, "limit");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(it, "name");
    if (!cJSON_IsString(path) || !*path->valuestring)
        return err_set("%s: eval_mcq[%d].path: required (a multiple-choice file)", c->name, i);
    if (snprintf(e->path, sizeof e->path, "%s", path->valuestring) >= (int)sizeof e->path)
        return err_set("%s: eval_mcq[%d].path: path too long", c->name, i);
    if (format && !cJSON_IsNull(format) &&
        (!cJSON_IsString(format) ||
         snprintf(e->format, sizeof e->format, "%s", format->valuestring) >=
             (int)sizeof e->format))
        return err_set("%s: eval_mcq[%d].format: must be pubmedqa, medqa, medmcqa or mmlu",
                       c->name, i);
    if (limit && !cJSON_IsNull(limit)) {
        long long n;
        if (!json_whole(limit, 0, 1e12, &n))
            return err_set("%s: eval_mcq[%d].limit: must be a whole number >= 0 (0 = all items)",
                           c->name, i);
        e->limit = n;
    }
    if (name && !cJSON_IsNull(name)) {
        if (!cJSON_IsString(name))
            return err_set("%s: eval_mcq[%d].name: must be a string", c->name, i);
        snprintf(e->name, sizeof e->name, "%s", name->valuestring);
        if (!mcq_name_ok(name->valuestring))
            return err_set("%s: eval_mcq[%d].name: '%s' must be 1-%d characters of letters, "
                           "digits, '_', '.', '-'",
                           c->name, i, name->valuestring, TRAIN_MCQ_NAME_MAX - 1);
    } else {
        file_stem(e->path, e->name, sizeof e->name);
        if (!mcq_name_ok(e->name))
            return err_set("%s: eval_mcq[%d]: the file stem '%s' cannot name metrics: give a "
                           "name (letters, digits, '_', '.', '-')",
                           c->name, i, e->name);
    }
    return 0;
}

static int store_mcq(train_config *tc, const config *c, const train_config_key *k) {
    const cJSON *arr = config_find(c, k->key);
    if (!cJSON_IsArray(arr))
        return err_set("%s: %s: must be a list of {path, format, limit, name} objects", c->name,
                       k->key);
    int n = cJSON_GetArraySize(arr);
    if (n > TRAIN_MCQ_MAX)
        return err_set("%s: %s: %d sets, at most %d", c->name, k->key, n, TRAIN_MCQ_MAX);
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        train_mcq_set *e = &tc->eval_mcq[tc->n_eval_mcq];
        if (store_mcq_entry(e, c, it, tc->n_eval_mcq)) return -1;
        for (int j = 0; j < tc->n_eval_mcq; j++)
            if (!strcmp(tc->eval_mcq[j].name, e->name))
                return err_set("%s: eval_mcq[%d]: the name '%s' is taken by eval_mcq[%d]: give "
                               "each set its own name",
                               c->name, tc->n_eval_mcq, e->name, j);
        tc->n_eval_mcq++;
    }
    return 0;
}

static int store_metric(train_config *tc, const config *c, const train_config_key *k) {
    const char *s;
    if (config_string(c, k->key, "", &s)) return -1;
    if (snprintf(tc->best_metric, sizeof tc->best_metric, "%s", s) >= (int)sizeof tc->best_metric)
        return err_set("%s: %s: '%s' is too long", c->name, k->key, s);
    return 0;
}

int train_config_best_higher(const train_config *tc, int *mcq) {
    *mcq = -1;
    if (strncmp(tc->best_metric, "mcq:", 4)) return 0;
    for (int i = 0; i < tc->n_eval_mcq; i++)
        if (!strcmp(tc->eval_mcq[i].name, tc->best_metric + 4)) *mcq = i;
    return 1;
}

// best.metric names val_loss or a set of eval_mcq; both need evaluations.
static int check_best(const train_config *tc, const config *c) {
    int mcq;
    if (!tc->best_metric[0]) {
        if (tc->best_patience > 0)
            return err_set("%s: best.patience: set, but best.metric names no metric", c->name);
        return 0;
    }
    if (train_config_best_higher(tc, &mcq) && mcq < 0)
        return err_set("%s: best.metric: '%s' names no eval_mcq set (give mcq:<name> of one)",
                       c->name, tc->best_metric);
    if (!train_config_best_higher(tc, &mcq) && strcmp(tc->best_metric, "val_loss"))
        return err_set("%s: best.metric: unknown '%s' (known: val_loss, mcq:<name>)", c->name,
                       tc->best_metric);
    if (tc->eval_every == 0)
        return err_set("%s: best.metric: set, but eval_every is 0 (no evaluation to compare)",
                       c->name);
    return 0;
}

static int store_key(train_config *tc, const config *c, const train_config_key *k) {
    if (!present(c, k->key) && !strcmp(k->def, "none") && k->type != TRAIN_KEY_PATH) return 0;
    char lit[64];
    int b;
    switch (k->type) {
    case TRAIN_KEY_PATH: return store_path(tc, c, k);
    case TRAIN_KEY_CHOICE: return store_choice(tc, c, k);
    case TRAIN_KEY_TARGETS: return store_targets(tc, c, k);
    case TRAIN_KEY_MCQ: return store_mcq(tc, c, k);
    case TRAIN_KEY_METRIC: return store_metric(tc, c, k);
    case TRAIN_KEY_BOOL:
        config_default_literal(k->def, lit, sizeof lit);
        if (config_bool(c, k->key, !strcmp(lit, "true"), &b)) return -1;
        *(int *)((char *)tc + k->offset) = b;
        return 0;
    default: return store_number(tc, c, k);
    }
}

static int parse(train_config *tc, const config *c) {
    memset(tc, 0, sizeof *tc);
    if (check_keys(c, c->root, "")) return -1;
    int has_steps = present(c, "steps");
    if (has_steps && present(c, "epochs"))
        return err_set("%s: steps and epochs: give one of them, not both", c->name);
    for (size_t i = 0; i < N_KEYS; i++)
        if (store_key(tc, c, &KEYS[i])) return -1;
    // epochs' default applies only without steps: the run length is one or the other.
    if (has_steps) tc->epochs = 0;
    if (tc->replay_ratio > 0.0 && !tc->data_replay[0])
        return err_set("%s: data.replay_ratio: set, but data.replay names no shard directory",
                       c->name);
    if (tc->dpo_beta <= 0.0) return err_set("%s: dpo.beta: %g must be > 0", c->name, tc->dpo_beta);
    if (tc->orpo_beta <= 0.0)
        return err_set("%s: orpo.beta: %g must be > 0", c->name, tc->orpo_beta);
    if (tc->dpo_label_smoothing > 0.0 && tc->dpo_loss != DPO_LOSS_SIGMOID)
        return err_set("%s: dpo.label_smoothing: applies to dpo.loss sigmoid only", c->name);
    return check_best(tc, c);
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

// The object a dotted key lives in ("optim" for "optim.lr", created when missing) and, in
// *leaf, its last part.
static cJSON *parent_object(cJSON *root, const char *key, const char **leaf) {
    const char *dot = strchr(key, '.');
    *leaf = dot ? dot + 1 : key;
    if (!dot) return root;
    char group[64];
    snprintf(group, sizeof group, "%.*s", (int)(dot - key), key);
    cJSON *g = cJSON_GetObjectItemCaseSensitive(root, group);
    return g ? g : cJSON_AddObjectToObject(root, group);
}

static void add_key(cJSON *root, const train_config *tc, const train_config_key *k) {
    const char *leaf;
    cJSON *obj = parent_object(root, k->key, &leaf);
    const void *v = (const char *)tc + k->offset;
    double number = 0;
    switch (k->type) {
    case TRAIN_KEY_PATH:
        if (*(const char *)v) cJSON_AddStringToObject(obj, leaf, v);
        else cJSON_AddNullToObject(obj, leaf);
        return;
    case TRAIN_KEY_FLOAT: add_float(obj, leaf, *(const float *)v); return;
    case TRAIN_KEY_DOUBLE: cJSON_AddNumberToObject(obj, leaf, *(const double *)v); return;
    case TRAIN_KEY_BOOL: cJSON_AddBoolToObject(obj, leaf, *(const int *)v); return;
    case TRAIN_KEY_CHOICE: cJSON_AddStringToObject(obj, leaf, k->choices[*(const int *)v]); return;
    case TRAIN_KEY_TARGETS: {
        cJSON *targets = cJSON_AddArrayToObject(obj, leaf);
        for (int t = 0; t < LORA_N_TARGETS; t++)
            if ((*(const uint32_t *)v >> t) & 1u)
                cJSON_AddItemToArray(targets, cJSON_CreateString(LORA_TARGET_NAMES[t]));
        return;
    }
    case TRAIN_KEY_MCQ: {
        const train_mcq_set *sets = v;
        if (!tc->n_eval_mcq) {
            cJSON_AddNullToObject(obj, leaf);
            return;
        }
        cJSON *list = cJSON_AddArrayToObject(obj, leaf);
        for (int i = 0; i < tc->n_eval_mcq; i++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "path", sets[i].path);
            if (sets[i].format[0]) cJSON_AddStringToObject(e, "format", sets[i].format);
            else cJSON_AddNullToObject(e, "format");
            cJSON_AddNumberToObject(e, "limit", (double)sets[i].limit);
            cJSON_AddStringToObject(e, "name", sets[i].name);
            cJSON_AddItemToArray(list, e);
        }
        return;
    }
    case TRAIN_KEY_METRIC:
        if (*(const char *)v) cJSON_AddStringToObject(obj, leaf, v);
        else cJSON_AddNullToObject(obj, leaf);
        return;
    case TRAIN_KEY_INT: number = *(const int *)v; break;
    case TRAIN_KEY_INT64: number = (double)*(const int64_t *)v; break;
    case TRAIN_KEY_UINT64: number = (double)*(const uint64_t *)v; break;
    }
    if (number == 0 && (k->flags & TRAIN_KEY_ZERO_IS_NULL)) cJSON_AddNullToObject(obj, leaf);
    else cJSON_AddNumberToObject(obj, leaf, number);
}

cJSON *train_config_to_json(const train_config *tc) {
    cJSON *j = cJSON_CreateObject();
    for (size_t i = 0; j && i < N_KEYS; i++) add_key(j, tc, &KEYS[i]);
    return j;
}

// Settings a resumed run may change (TRAIN_KEY_RESUME_FREE) affect how long the run goes and
// what it writes, not the value of any step, except grad_accum: the global batch of the steps
// after the resume, as the number of ranks is. Files are compared by content (model and data
// fingerprints in the checkpoint), not by path, so a moved model or shard directory still
// resumes.
static int resume_free(const char *key) {
    const train_config_key *k = key_find(key);
    return k && (k->flags & TRAIN_KEY_RESUME_FREE);
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
