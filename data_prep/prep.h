// `medtune prep`: corpus files -> cleaned, deduplicated, tokenized documents -> train/val
// shard directory with manifest.json (docs/prep.md).
#ifndef MEDTUNE_DATA_PREP_PREP_H
#define MEDTUNE_DATA_PREP_PREP_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "data_prep/ingest.h"
#include "data_prep/phi.h"

typedef struct {
    char *path;  // file, glob or .gz
    input_format format;
    char *text_field;  // NULL: the format's default
} prep_input;

typedef struct {
    char *tokenizer;  // HF directory, tokenizer.json or .gguf
    prep_input *inputs;
    int n_inputs;
    char *template_name;  // chat inputs only; default "auto"
    double val_fraction;
    int dedup, scrub_phi, strict;
    long long min_chars, shard_tokens;
    char *out_dir;
} prep_config;

// The config keys, defined once: prep_config_read reads them from this table, `medtune prep
// --help` prints it and tests/test_train_config.c checks that docs/prep.md lists the same keys,
// defaults and meanings.
typedef enum {
    PREP_KEY_STRING,  // char *, owned by prep_config
    PREP_KEY_INPUTS,  // the inputs list: {path, format, text_field} objects
    PREP_KEY_NUMBER,  // double
    PREP_KEY_INT,     // long long
    PREP_KEY_BOOL,    // int, 0 or 1
} prep_key_type;

typedef struct {
    const char *key;
    prep_key_type type;
    const char *def;  // as docs/prep.md shows it: "required", or the value ("0.05", "`auto`")
    const char *meaning;
    double min, max;  // accepted range of numbers
    int max_open;     // the range excludes max: [min, max)
    size_t offset;    // of the value in prep_config
} prep_config_key;

const prep_config_key *prep_config_keys(size_t *n);

// Reads and validates the prep keys of a config (unknown keys are errors).
int prep_config_read(const config *c, prep_config *pc);
void prep_config_free(prep_config *pc);

typedef struct {
    uint64_t files, records, kept;
    uint64_t malformed, empty, too_short, duplicates;
    uint64_t phi[PHI_KINDS];
    uint64_t docs[2], tokens[2], trained[2];  // [0] train, [1] val
    uint64_t pairs[2];  // preference pairs (each also counted in docs)
    uint64_t bytes_in;
    double seconds;
    char first_malformed[512];
    char template_name[16];  // "" for text-only corpora
    int n_files_total;
} prep_summary;

// Called after each batch of documents and at the end of each file (done = 1 at the end).
typedef void (*prep_progress_fn)(void *user, const prep_summary *s, const char *current_file, int done);

int prep_run(const prep_config *pc, prep_progress_fn progress, void *user, prep_summary *out);

// The summary counts as a JSON object (shared by manifest.json and `prep --json`).
cJSON *prep_summary_json(const prep_summary *s);

#endif
