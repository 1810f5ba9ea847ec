// The prep configuration (docs/prep.md): keys, types, defaults and ranges.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "data_prep/prep.h"

static const char *const TOP_KEYS[] = {"tokenizer", "inputs",    "template", "val_fraction",
                                       "dedup",     "min_chars", "scrub_phi", "strict",
                                       "out_dir",   "shard_tokens", NULL};
static const char *const INPUT_KEYS[] = {"path", "format", "text_field", NULL};

static char *dup(const char *s) {
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) err_set("out of memory");
    return d;
}

int prep_config_read(const config *c, prep_config *pc) {
    memset(pc, 0, sizeof *pc);
    if (config_check_keys(c, "", TOP_KEYS)) return -1;
    const char *tok, *tpl, *out;
    int n;
    if (config_string(c, "tokenizer", NULL, &tok) || config_string(c, "template", "auto", &tpl) ||
        config_string(c, "out_dir", NULL, &out) || config_number(c, "val_fraction", 0.05, &pc->val_fraction) ||
        config_bool(c, "dedup", 1, &pc->dedup) || config_bool(c, "scrub_phi", 0, &pc->scrub_phi) ||
        config_bool(c, "strict", 0, &pc->strict) || config_int(c, "min_chars", 0, &pc->min_chars) ||
        config_int(c, "shard_tokens", 1 << 24, &pc->shard_tokens) || config_array_size(c, "inputs", &n))
        return -1;
    if (!tok) return err_set("%s: missing \"tokenizer\" (a model directory, tokenizer.json or .gguf)", c->name);
    if (!out) return err_set("%s: missing \"out_dir\"", c->name);
    if (n == 0) return err_set("%s: \"inputs\" must list at least one input", c->name);
    if (pc->val_fraction < 0 || pc->val_fraction >= 1)
        return err_set("%s: val_fraction: must be in [0, 1)", c->name);
    if (pc->min_chars < 0) return err_set("%s: min_chars: must be >= 0", c->name);
    if (pc->shard_tokens < 1024 || pc->shard_tokens > (1ll << 40))
        return err_set("%s: shard_tokens: must be between 1024 and 2^40", c->name);
    pc->tokenizer = dup(tok);
    pc->template_name = dup(tpl);
    pc->out_dir = dup(out);
    pc->inputs = calloc((size_t)n, sizeof *pc->inputs);
    if (!pc->tokenizer || !pc->template_name || !pc->out_dir || !pc->inputs) {
        prep_config_free(pc);
        return err_set("out of memory");
    }
    pc->n_inputs = n;
    for (int i = 0; i < n; i++) {
        char key[64];
        const char *path, *fmt, *field;
        snprintf(key, sizeof key, "inputs.%d", i);
        int bad = config_check_keys(c, key, INPUT_KEYS);
        snprintf(key, sizeof key, "inputs.%d.path", i);
        bad = bad || config_string(c, key, NULL, &path);
        snprintf(key, sizeof key, "inputs.%d.format", i);
        bad = bad || config_string(c, key, NULL, &fmt);
        snprintf(key, sizeof key, "inputs.%d.text_field", i);
        bad = bad || config_string(c, key, NULL, &field);
        if (!bad && (!path || !fmt)) bad = err_set("%s: inputs.%d: needs \"path\" and \"format\"", c->name, i);
        if (!bad && input_format_parse(fmt, &pc->inputs[i].format))
            bad = err_prefix("%s: inputs.%d.format", c->name, i);
        if (!bad && field && pc->inputs[i].format != INPUT_JSONL && pc->inputs[i].format != INPUT_ALPACA &&
            pc->inputs[i].format != INPUT_SHAREGPT && pc->inputs[i].format != INPUT_MESSAGES)
            bad = err_set("%s: inputs.%d.text_field: only for jsonl, alpaca, sharegpt and messages", c->name, i);
        if (!bad) {
            pc->inputs[i].path = dup(path);
            pc->inputs[i].text_field = dup(field);
            if (!pc->inputs[i].path || (field && !pc->inputs[i].text_field)) bad = -1;
        }
        if (bad) {
            prep_config_free(pc);
            return -1;
        }
    }
    return 0;
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
