// manifest.json of a shard directory (docs/formats.md, "Shards"), written last and
// atomically, before the directory is published under its name: a directory with a manifest
// is complete.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileio.h"
#include "common/strbuf.h"
#include "data_prep/prep_internal.h"
#include "data_prep/shard_format.h"

int prep_add_file(prep_state *st, const char *path, int input) {
    // The per-file arrays grow together: from the same capacity vec_grow gives each the same
    // new one, which is recorded only once all of them have it.
    size_t need = (size_t)st->n_files + 1, c[4];
    for (int i = 0; i < 4; i++) c[i] = st->cap_files;
    char **f = vec_grow(st->files, &c[0], need, sizeof *f);
    if (f) st->files = f;
    int *fi = vec_grow(st->file_input, &c[1], need, sizeof *fi);
    if (fi) st->file_input = fi;
    uint64_t *r = vec_grow(st->file_records, &c[2], need, sizeof *r);
    if (r) st->file_records = r;
    uint64_t *k = vec_grow(st->file_kept, &c[3], need, sizeof *k);
    if (k) st->file_kept = k;
    if (!f || !fi || !r || !k) return err_set("prep: out of memory");
    st->cap_files = c[0];
    st->files[st->n_files] = strdup(path);
    if (!st->files[st->n_files]) return err_set("prep: out of memory");
    st->file_input[st->n_files] = input;
    st->file_records[st->n_files] = st->file_kept[st->n_files] = 0;
    st->n_files++;
    return 0;
}

void prep_free_files(prep_state *st) {
    for (int i = 0; i < st->n_files; i++) free(st->files[i]);
    free(st->files);
    free(st->file_input);
    free(st->file_records);
    free(st->file_kept);
}

cJSON *prep_summary_json(const prep_summary *s) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "files", (double)s->files);
    cJSON_AddNumberToObject(o, "records_read", (double)s->records);
    cJSON_AddNumberToObject(o, "documents_kept", (double)s->kept);
    cJSON *dropped = cJSON_AddObjectToObject(o, "dropped");
    cJSON_AddNumberToObject(dropped, "malformed", (double)s->malformed);
    cJSON_AddNumberToObject(dropped, "empty", (double)s->empty);
    cJSON_AddNumberToObject(dropped, "too_short", (double)s->too_short);
    cJSON_AddNumberToObject(dropped, "duplicate", (double)s->duplicates);
    if (s->first_malformed[0]) cJSON_AddStringToObject(o, "first_malformed", s->first_malformed);
    cJSON *phi = cJSON_AddObjectToObject(o, "phi_replacements");
    for (int k = 0; k < PHI_KINDS; k++) cJSON_AddNumberToObject(phi, phi_kind_name((phi_kind)k), (double)s->phi[k]);
    static const char *const split_names[2] = {"train", "val"};
    for (int sp = 0; sp < 2; sp++) {
        cJSON *x = cJSON_AddObjectToObject(o, split_names[sp]);
        cJSON_AddNumberToObject(x, "documents", (double)s->docs[sp]);
        cJSON_AddNumberToObject(x, "tokens", (double)s->tokens[sp]);
        cJSON_AddNumberToObject(x, "trained_tokens", (double)s->trained[sp]);
        if (s->pairs[0] + s->pairs[1]) cJSON_AddNumberToObject(x, "pairs", (double)s->pairs[sp]);
    }
    cJSON_AddNumberToObject(o, "input_bytes", (double)s->bytes_in);
    cJSON_AddNumberToObject(o, "seconds", s->seconds);
    return o;
}

static cJSON *split_json(const shard_writer *w, int pairs, uint64_t n_pairs) {
    cJSON *o = cJSON_CreateObject();
    uint64_t trained = 0;
    cJSON *shards = cJSON_CreateArray();
    for (size_t i = 0; i < shard_writer_count(w); i++) {
        const shard_file_info *f = shard_writer_file(w, i);
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "file", f->name);
        cJSON_AddNumberToObject(e, "n_tokens", (double)f->n_tokens);
        cJSON_AddNumberToObject(e, "n_docs", (double)f->n_docs);
        cJSON_AddNumberToObject(e, "n_trained", (double)f->n_trained);
        cJSON_AddNumberToObject(e, "bytes", (double)f->bytes);
        cJSON_AddStringToObject(e, "sha256", f->sha256);
        cJSON_AddItemToArray(shards, e);
        trained += f->n_trained;
    }
    cJSON_AddNumberToObject(o, "n_tokens", (double)shard_writer_tokens(w));
    cJSON_AddNumberToObject(o, "n_docs", (double)shard_writer_docs(w));
    cJSON_AddNumberToObject(o, "n_trained", (double)trained);
    if (pairs) cJSON_AddNumberToObject(o, "n_pairs", (double)n_pairs);
    cJSON_AddItemToObject(o, "shards", shards);
    return o;
}

int prep_write_manifest(prep_state *st) {
    const prep_config *pc = st->pc;
    cJSON *m = cJSON_CreateObject();
    if (!m) return err_set("prep: out of memory");
    cJSON_AddStringToObject(m, "format", "medtune-shards");
    // Pair directories are version 2, so a medtune that knows only version 1 refuses them
    // instead of reading the pairs' segments as documents.
    int pairs = st->pc->n_inputs > 0 && st->pc->inputs[0].format == INPUT_PREFERENCE;
    cJSON_AddNumberToObject(m, "version", pairs ? SHARD_MANIFEST_VERSION_PAIRS : SHARD_MANIFEST_VERSION);
    cJSON *tok = cJSON_AddObjectToObject(m, "tokenizer");
    cJSON_AddStringToObject(tok, "path", pc->tokenizer);
    cJSON_AddStringToObject(tok, "fingerprint", tokenizer_fingerprint(st->tok));
    cJSON_AddStringToObject(tok, "kind", tokenizer_kind(st->tok));
    cJSON_AddNumberToObject(tok, "vocab_size", tokenizer_vocab_size(st->tok));
    cJSON_AddNumberToObject(tok, "bos_id", tokenizer_bos_id(st->tok));
    cJSON_AddNumberToObject(tok, "eos_id", tokenizer_eos_id(st->tok));
    cJSON_AddBoolToObject(tok, "adds_bos", tokenizer_adds_bos(st->tok));
    if (st->has_tpl) cJSON_AddStringToObject(m, "template", chat_template_name(&st->tpl));
    else cJSON_AddNullToObject(m, "template");
    cJSON_AddStringToObject(m, "packing", pairs ? "pairs" : st->has_tpl ? "whole" : "stream");
    cJSON_AddNumberToObject(m, "frame_tokens", SHARD_DEFAULT_FRAME_TOKENS);
    cJSON_AddNumberToObject(m, "shard_tokens", (double)pc->shard_tokens);
    cJSON_AddNumberToObject(m, "val_fraction", pc->val_fraction);
    cJSON *settings = cJSON_AddObjectToObject(m, "cleaning");
    cJSON_AddBoolToObject(settings, "dedup", pc->dedup);
    cJSON_AddNumberToObject(settings, "min_chars", (double)pc->min_chars);
    cJSON_AddBoolToObject(settings, "scrub_phi", pc->scrub_phi);
    cJSON_AddBoolToObject(settings, "strict", pc->strict);
    cJSON *splits = cJSON_AddObjectToObject(m, "splits");
    cJSON_AddItemToObject(splits, "train", split_json(st->w[0], pairs, st->sum->pairs[0]));
    cJSON_AddItemToObject(splits, "val", split_json(st->w[1], pairs, st->sum->pairs[1]));
    cJSON *sources = cJSON_AddArrayToObject(m, "sources");
    for (int i = 0; i < st->n_files; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "path", st->files[i]);
        cJSON_AddStringToObject(e, "format", input_format_name(pc->inputs[st->file_input[i]].format));
        cJSON_AddNumberToObject(e, "records", (double)st->file_records[i]);
        cJSON_AddNumberToObject(e, "documents_kept", (double)st->file_kept[i]);
        cJSON_AddItemToArray(sources, e);
    }
    cJSON *counts = prep_summary_json(st->sum);
    // The summary's timing is not part of the data's identity; keep the manifest reproducible.
    cJSON_DeleteItemFromObject(counts, "seconds");
    cJSON_AddItemToObject(m, "counts", counts);
    char *text = cJSON_Print(m);
    cJSON_Delete(m);
    if (!text) return err_set("prep: out of memory");
    char path[4200];
    int rc = path_join(path, sizeof path, st->dir, SHARD_MANIFEST) ||
             file_write_atomic(path, text, strlen(text));
    free(text);
    return rc ? -1 : 0;
}
