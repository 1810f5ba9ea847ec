// JSON configuration files shared by `prep` and `train`: comments allowed (// and /* */),
// `--set a.b=value` overrides, strict key checking and typed getters. Keys are dotted paths
// from the root; array elements are addressed by index ("inputs.0.path"). Every error names
// the config file and the key: "<file>: <key>: <what is wrong>".
#ifndef MEDTUNE_COMMON_CONFIG_H
#define MEDTUNE_COMMON_CONFIG_H

#include <cjson/cJSON.h>
#include <stddef.h>

typedef struct {
    cJSON *root;
    char name[1024];  // file name used in messages
} config;

// Reads and parses a config file; the root must be a JSON object.
int config_load(config *c, const char *path);
// Parses config text; `name` is what messages call it.
int config_parse(config *c, const char *text, const char *name);
void config_free(config *c);

// Applies "a.b.c=value". The value is taken as JSON when it parses as JSON (numbers, true,
// false, null, "quoted", [..], {..}) and as a plain string otherwise. Missing intermediate
// objects are created; array elements must exist.
int config_set(config *c, const char *assignment);

// The node at a dotted path, or NULL when absent ("" is the root).
const cJSON *config_find(const config *c, const char *path);

// Fails on the first key of the object at `path` that is not in `allowed` (NULL-terminated),
// naming it. An absent object passes; a non-object fails.
int config_check_keys(const config *c, const char *path, const char *const *allowed);

// Typed getters: an absent key (or JSON null) yields the default; a wrong type is an error.
int config_string(const config *c, const char *path, const char *def, const char **out);
int config_int(const config *c, const char *path, long long def, long long *out);
int config_number(const config *c, const char *path, double def, double *out);
int config_bool(const config *c, const char *path, int def, int *out);
// Number of elements of the array at `path` (0 when absent); a non-array is an error.
int config_array_size(const config *c, const char *path, int *n);

// Key tables (train/train_config.c, data_prep/prep_config.c) write each default as the docs
// show it; this is its value part: "`cosine`" -> "cosine", "0 (all cores)" -> "0".
void config_default_literal(const char *def, char *out, size_t n);

// Fails with "<file>: <key>: <v> is out of range [lo, hi]" (or "hi)" when max_open) unless
// lo <= v <= hi (v < hi when max_open). `is_int` prints the bounds as integers.
int config_check_range(const config *c, const char *key, double v, double lo, double hi,
                       int max_open, int is_int);

#endif
