// The prep configuration (docs/prep.md): one table of keys (KEYS) gives the accepted keys,
// their types, defaults, ranges and meanings; prep_config_read and `medtune prep --help` read it.
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/error.h"
#include "data_prep/prep.h"

#define OFF(field) offsetof(prep_config, field)

static const prep_config_key KEYS[] = {
    {"tokenizer", PREP_KEY_STRING, "required", "HF model directory, `tokenizer.json` or `.gguf`",
     .offset = OFF(tokenizer)},
    {"inputs", PREP_KEY_INPUTS, "required", "list of `{path, format, text_field}`",
     .offset = OFF(inputs)},
    {"template", PREP_KEY_STRING, "`auto`",
     "chat template for chat inputs: `auto`, `chatml`, `llama2`, `llama3`, `alpaca`, `zephyr`, "
     "`gemma`, `qwen3`, `phi3`",
     .offset = OFF(template_name)},
    {"val_fraction", PREP_KEY_NUMBER, "0.05", "share of documents in the val split, in [0, 1)", 0,
     1, 1, OFF(val_fraction)},
    {"dedup", PREP_KEY_BOOL, "true", "drop exact duplicates of cleaned text", .offset = OFF(dedup)},
    {"min_chars", PREP_KEY_INT, "0",
     "drop documents with fewer characters (code points) after cleaning", 0, 9007199254740992.0,
     .offset = OFF(min_chars)},
    {"scrub_phi", PREP_KEY_BOOL, "false", "replace identifiers (below)", .offset = OFF(scrub_phi)},
    {"strict", PREP_KEY_BOOL, "false", "fail on the first malformed record instead of skipping it",
     .offset = OFF(strict)},
    {"out_dir", PREP_KEY_STRING, "required", "output directory (created)", .offset = OFF(out_dir)},
    {"shard_tokens", PREP_KEY_INT, "16777216", "tokens per shard file", 1024, 1099511627776.0,
     .offset = OFF(shard_tokens)},
};
#define N_KEYS (sizeof KEYS / sizeof KEYS[0])

static const char *const INPUT_KEYS[] = {"path", "format", "text_field", NULL};

const prep_config_key *prep_config_keys(size_t *n) {
    *n = N_KEYS;
    return KEYS;
}

static char *dup(const char *s) {
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) err_set("out of memory");
    return d;
}

static int read_key(const config *c, const prep_config_key *k, prep_config *pc) {
    void *dst = (char *)pc + k->offset;
    char lit[64];
    config_default_literal(k->def, lit, sizeof lit);
    int required = !strcmp(k->def, "required");
    const cJSON *v = config_find(c, k->key);
    if (required && (!v || cJSON_IsNull(v)))
        return err_set("%s: %s: required (%s)", c->name, k->key, k->meaning);
    const char *s;
    double d;
    long long i = 0;
    switch (k->type) {
    case PREP_KEY_STRING:
        if (config_string(c, k->key, lit, &s)) return -1;
        return (*(char **)dst = dup(s)) ? 0 : -1;
    case PREP_KEY_BOOL: return config_bool(c, k->key, !strcmp(lit, "true"), dst);
    case PREP_KEY_NUMBER:
        if (config_number(c, k->key, strtod(lit, NULL), &d)) return -1;
        break;
    case PREP_KEY_INT:
        if (config_int(c, k->key, strtoll(lit, NULL, 10), &i)) return -1;
        d = (double)i;
        *(long long *)dst = i;
        break;
    case PREP_KEY_INPUTS: return 0;
    }
    if (config_check_range(c, k->key, d, k->min, k->max, k->max_open, k->type == PREP_KEY_INT))
        return -1;
    if (k->type == PREP_KEY_NUMBER) *(double *)dst = d;
    return 0;
}

static int read_input(const config *c, int i, prep_input *in) {
    char key[64];
    const char *path, *fmt, *field;
    snprintf(key, sizeof key, "inputs.%d", i);
    if (config_check_keys(c, key, INPUT_KEYS)) return -1;
    snprintf(key, sizeof key, "inputs.%d.path", i);
    if (config_string(c, key, NULL, &path)) return -1;
    snprintf(key, sizeof key, "inputs.%d.format", i);
    if (config_string(c, key, NULL, &fmt)) return -1;
    snprintf(key, sizeof key, "inputs.%d.text_field", i);
    if (config_string(c, key, NULL, &field)) return -1;
    if (!path || !fmt) return err_set("%s: inputs.%d: needs \"path\" and \"format\"", c->name, i);
    if (input_format_parse(fmt, &in->format)) return err_prefix("%s: inputs.%d.format", c->name, i);
    if (field && in->format != INPUT_JSONL && in->format != INPUT_ALPACA &&
        in->format != INPUT_SHAREGPT && in->format != INPUT_MESSAGES)
        return err_set("%s: inputs.%d.text_field: only for jsonl, alpaca, sharegpt and messages",
                       c->name, i);
    in->path = dup(path);
    in->text_field = dup(field);
    return !in->path || (field && !in->text_field) ? -1 : 0;
}

int prep_config_read(const config *c, prep_config *pc) {
    memset(pc, 0, sizeof *pc);
    const char *top[N_KEYS + 1];
    for (size_t i = 0; i < N_KEYS; i++) top[i] = KEYS[i].key;
    top[N_KEYS] = NULL;
    if (config_check_keys(c, "", top)) return -1;
    int n, rc = 0;
    for (size_t i = 0; !rc && i < N_KEYS; i++) rc = read_key(c, &KEYS[i], pc);
    if (!rc && !(rc = config_array_size(c, "inputs", &n)) && n == 0)
        rc = err_set("%s: inputs: must list at least one input", c->name);
    if (!rc && !(pc->inputs = calloc((size_t)n, sizeof *pc->inputs))) rc = err_set("out of memory");
    if (!rc) pc->n_inputs = n;
    for (int i = 0; !rc && i < n; i++) rc = read_input(c, i, &pc->inputs[i]);
    // A shard directory holds pairs or documents, never both: the trainer reads it one way.
    for (int i = 1; !rc && i < n; i++)
        if ((pc->inputs[i].format == INPUT_PREFERENCE) != (pc->inputs[0].format == INPUT_PREFERENCE))
            rc = err_set("%s: inputs.%d: preference inputs cannot be mixed with other formats in one "
                         "shard directory", c->name, i);
    if (rc) prep_config_free(pc);
    return rc;
}

void prep_config_free(prep_config *pc) {
    for (int i = 0; pc->inputs && i < pc->n_inputs; i++) {
        free(pc->inputs[i].path);
        free(pc->inputs[i].text_field);
    }
    free(pc->inputs);
    free(pc->tokenizer);
    free(pc->template_name);
    free(pc->out_dir);
    memset(pc, 0, sizeof *pc);
}
