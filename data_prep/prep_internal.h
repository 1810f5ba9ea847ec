// State shared by the prep pipeline (prep.c) and its manifest writer (prep_manifest.c).
#ifndef MEDTUNE_DATA_PREP_PREP_INTERNAL_H
#define MEDTUNE_DATA_PREP_PREP_INTERNAL_H

#include "data_prep/chat_template.h"
#include "data_prep/doc_hash.h"
#include "data_prep/prep.h"
#include "data_prep/shard_writer.h"
#include "tokenizer/tokenizer.h"

typedef struct {
    const prep_config *pc;
    prep_summary *sum;
    prep_progress_fn progress;
    void *user;
    double t0;

    tokenizer *tok;
    chat_template tpl;
    int has_tpl;
    phi_scrubber *phi;
    char dir[4200];      // where shards and manifest are written: <out_dir>.partial
    int dir_made;
    shard_writer *w[2];  // train, val
    doc_hash_set seen;
    ingest_ctx ic;
    uint64_t empty_cleaned;  // documents with no text left after cleaning

    struct work_item *items;  // the current batch
    size_t n_items, cap_items, batch_bytes;
    int cur_source;

    // expanded input files, in processing order
    char **files;
    int *file_input;  // index into pc->inputs
    uint64_t *file_records, *file_kept;
    int n_files;
    size_t cap_files;
} prep_state;

// A preference pair being processed (prep_pair.c).
typedef struct {
    strbuf text[2];          // prompt + chosen, prompt + rejected, rendered
    size_t prompt_bytes[2];  // where the generation prompt ends in text[k]
    id_vec ids[2];           // text[k] tokenized
    size_t prompt_len;       // tokens of the shared prompt: ids[k][0, prompt_len)
} pair_item;

void pair_item_free(pair_item *p);
// Renders document d (is_pair) into p. 0 ok, 1 malformed (why), -1 out of memory (why).
int pair_render(const chat_template *t, const document *d, pair_item *p, char *why, size_t n);
// Tokenizes p. 0 ok, 1 malformed (why), -1 error (err_msg()).
int pair_tokenize(const tokenizer *tok, pair_item *p, char *why, size_t n);

int prep_add_file(prep_state *st, const char *path, int input);
void prep_free_files(prep_state *st);
// Writes manifest.json atomically; the shards must be finished.
int prep_write_manifest(prep_state *st);

#endif
