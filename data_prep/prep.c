// The prep pipeline. Readers stream documents into a batch; each batch is processed in
// three phases so the result does not depend on the number of threads:
//   1. parallel: clean (NFC, whitespace), scrub identifiers, render chat templates, hash;
//   2. in input order: count malformed/empty/short documents, dedup, pick the split;
//   3. parallel: tokenize and build loss masks; then append to the shards in input order.
#include "data_prep/prep.h"

#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "common/clock.h"
#include "common/fileio.h"
#include "common/str.h"
#include "common/strbuf.h"
#include "data_prep/chat_template.h"
#include "data_prep/clean.h"
#include "data_prep/doc_hash.h"
#include "data_prep/prep_internal.h"
#include "data_prep/shard_format.h"
#include "tokenizer/tokenizer.h"

static void prep_sync_counts(prep_state *st);
static int prep_flush_batch(prep_state *st);

enum { BATCH_DOCS = 512, BATCH_BYTES = 8 << 20 };
enum { ITEM_OK, ITEM_MALFORMED, ITEM_EMPTY };

typedef struct work_item {
    document doc;
    int source;
    int status;
    char why[200];
    strbuf text;  // cleaned text, or the rendered conversation
    chat_segment *segs;
    size_t n_segs;
    uint64_t phi[PHI_KINDS];
    size_t chars;
    doc_hash hash;
    int split;  // -1 dropped, 0 train, 1 val
    id_vec ids;
    uint8_t *trained;
    pair_item *pair;  // preference pairs
    int failed;  // phase error (out of memory), message in why
} work_item;

static void item_free(work_item *it) {
    document_free(&it->doc);
    strbuf_free(&it->text);
    free(it->segs);
    id_vec_free(&it->ids);
    free(it->trained);
    if (it->pair) pair_item_free(it->pair);
    memset(it, 0, sizeof *it);
}

// Called by the readers: copy the document into the batch, run the batch when full.
static int on_document(void *user, const document *d) {
    prep_state *st = user;
    work_item *items = vec_grow(st->items, &st->cap_items, st->n_items + 1, sizeof *items);
    if (!items) return err_set("prep: out of memory");
    st->items = items;
    work_item *it = &st->items[st->n_items];
    memset(it, 0, sizeof *it);
    it->source = st->cur_source;
    it->doc.is_chat = d->is_chat;
    memcpy(it->doc.where, d->where, sizeof it->doc.where);
    size_t bytes = 0;
    if (d->is_chat) {
        it->doc.is_pair = d->is_pair;
        if (conversation_append(&it->doc.conv, &d->conv, &bytes) ||
            (d->is_pair && (conversation_append(&it->doc.chosen, &d->chosen, &bytes) ||
                            conversation_append(&it->doc.rejected, &d->rejected, &bytes)))) {
            document_free(&it->doc);
            return -1;
        }
    } else {
        it->doc.text = str_dup_n(d->text, d->len);
        if (!it->doc.text) return err_set("prep: out of memory");
        it->doc.len = d->len;
        bytes = d->len;
    }
    st->n_items++;
    st->batch_bytes += bytes;
    if (st->n_items >= BATCH_DOCS || st->batch_bytes >= BATCH_BYTES) return prep_flush_batch(st);
    return 0;
}

// Cleans s into *out (malloc'd), scrubbing identifiers. 0 ok, 1 invalid UTF-8, -1 no memory.
static int clean_string(prep_state *st, const char *s, size_t n, strbuf *buf,
                        uint64_t phi[PHI_KINDS]) {
    int rc = clean_text(s, n, buf);
    if (rc) return rc;
    if (st->phi && phi_scrub(st->phi, buf, phi)) return -1;
    return 0;
}

// Cleans every message of c in place; counts non-empty answers. 0 ok, -1 malformed/failed.
static int clean_conv(prep_state *st, work_item *it, conversation *c, int *answers) {
    strbuf buf;
    strbuf_init(&buf);
    for (size_t i = 0; i < c->n; i++) {
        char **fields[2] = {&c->msgs[i].content, &c->msgs[i].input};
        for (int f = 0; f < 2; f++) {
            if (!*fields[f]) continue;
            int rc = clean_string(st, *fields[f], strlen(*fields[f]), &buf, it->phi);
            if (rc) {
                it->status = ITEM_MALFORMED;
                if (rc < 0) it->failed = 1;
                snprintf(it->why, sizeof it->why, "%s", rc > 0 ? "invalid UTF-8" : "out of memory");
                strbuf_free(&buf);
                return -1;
            }
            char *copy = str_dup_n(buf.data, buf.len);
            if (!copy) {
                it->failed = 1;
                snprintf(it->why, sizeof it->why, "out of memory");
                strbuf_free(&buf);
                return -1;
            }
            free(*fields[f]);
            *fields[f] = copy;
            it->chars += utf8_length(buf.data, buf.len);
            if (f == 0 && c->msgs[i].role == CHAT_ROLE_ASSISTANT && buf.len) (*answers)++;
        }
    }
    strbuf_free(&buf);
    return 0;
}

// A pair is kept when both responses still end with a non-empty answer after cleaning; the
// hash (dedup, split) covers both renderings.
static void phase_clean_pair(prep_state *st, work_item *it) {
    document *d = &it->doc;
    int unused = 0;
    if (clean_conv(st, it, &d->conv, &unused) || clean_conv(st, it, &d->chosen, &unused) ||
        clean_conv(st, it, &d->rejected, &unused))
        return;
    if (!*d->chosen.msgs[d->chosen.n - 1].content || !*d->rejected.msgs[d->rejected.n - 1].content) {
        it->status = ITEM_EMPTY;
        return;
    }
    if (!(it->pair = calloc(1, sizeof *it->pair))) {
        it->failed = 1;
        snprintf(it->why, sizeof it->why, "out of memory");
        return;
    }
    int rc = pair_render(&st->tpl, d, it->pair, it->why, sizeof it->why);
    if (rc) {
        it->status = ITEM_MALFORMED;
        if (rc < 0) it->failed = 1;
        return;
    }
    const strbuf *t = it->pair->text;
    if (strbuf_append(&it->text, t[0].data, t[0].len) || strbuf_putc(&it->text, 0) ||
        strbuf_append(&it->text, t[1].data, t[1].len)) {
        it->failed = 1;
        snprintf(it->why, sizeof it->why, "out of memory");
        return;
    }
    it->hash = doc_hash_bytes(it->text.data, it->text.len);
}

static void phase_clean_chat(prep_state *st, work_item *it) {
    if (it->doc.is_pair) {
        phase_clean_pair(st, it);
        return;
    }
    conversation *c = &it->doc.conv;
    int answers = 0;
    if (clean_conv(st, it, c, &answers)) return;
    if (!answers) {
        it->status = ITEM_EMPTY;
        return;
    }
    chat_render r = {0};
    if (chat_template_render(&st->tpl, c, &r)) {
        it->status = ITEM_MALFORMED;
        snprintf(it->why, sizeof it->why, "%s", err_msg());
        chat_render_free(&r);
        return;
    }
    it->text = r.text;
    it->segs = r.segs;
    it->n_segs = r.n_segs;
    it->hash = doc_hash_bytes(it->text.data, it->text.len);
}

static void phase_clean(prep_state *st, work_item *it) {
    if (it->doc.is_chat) {
        phase_clean_chat(st, it);
        return;
    }
    int rc = clean_string(st, it->doc.text, it->doc.len, &it->text, it->phi);
    if (rc) {
        it->status = ITEM_MALFORMED;
        if (rc < 0) it->failed = 1;
        snprintf(it->why, sizeof it->why, "%s", rc > 0 ? "invalid UTF-8" : "out of memory");
        return;
    }
    if (it->text.len == 0) {
        it->status = ITEM_EMPTY;
        return;
    }
    it->chars = utf8_length(it->text.data, it->text.len);
    it->hash = doc_hash_bytes(it->text.data, it->text.len);
}

// Number of leading tokens of `full` that encoding text[0..b) reproduces: the token index
// where byte b falls (a token straddling b belongs to what follows).
static int prefix_tokens(const tokenizer *tok, const char *text, size_t b, const id_vec *full, size_t *out) {
    id_vec pre = {0};
    if (tokenizer_encode(tok, text, b, 0, &pre)) return -1;
    size_t k = 0;
    while (k < pre.len && k < full->len && pre.data[k] == full->data[k]) k++;
    id_vec_free(&pre);
    *out = k;
    return 0;
}

static int phase_tokenize(prep_state *st, work_item *it) {
    const tokenizer *tok = st->tok;
    if (it->pair) {
        int rc = pair_tokenize(tok, it->pair, it->why, sizeof it->why);
        if (rc > 0) it->status = ITEM_MALFORMED;
        return rc < 0 ? -1 : 0;
    }
    if (!it->doc.is_chat) {
        if (tokenizer_encode(tok, it->text.data, it->text.len, 1, &it->ids)) return -1;
        int eos = tokenizer_eos_id(tok);
        if (eos >= 0 && (it->ids.len == 0 || it->ids.data[it->ids.len - 1] != eos) && id_vec_push(&it->ids, eos))
            return -1;
        it->trained = malloc(it->ids.len + 1);
        if (!it->trained) return err_set("out of memory");
        memset(it->trained, 1, it->ids.len);
        return 0;
    }
    if (tokenizer_encode(tok, it->text.data, it->text.len, 0, &it->ids)) return -1;
    it->trained = calloc(it->ids.len + 1, 1);
    if (!it->trained) return err_set("out of memory");
    for (size_t s = 0; s < it->n_segs; s++) {
        const chat_segment *g = &it->segs[s];
        if (!g->trainable) continue;
        size_t a, b, end = g->start + g->len;
        if (prefix_tokens(tok, it->text.data, g->start, &it->ids, &a)) return -1;
        if (end == it->text.len) b = it->ids.len;
        else if (prefix_tokens(tok, it->text.data, end, &it->ids, &b)) return -1;
        for (size_t k = a; k < b; k++) it->trained[k] = 1;
    }
    return 0;
}

static int decide(prep_state *st, work_item *it) {
    prep_summary *sum = st->sum;
    it->split = -1;
    if (it->failed) return err_set("%s: %s", it->doc.where, it->why);
    if (it->status == ITEM_MALFORMED) return ingest_malformed(&st->ic, "%s: %s", it->doc.where, it->why);
    if (it->status == ITEM_EMPTY) {
        st->empty_cleaned++;
        return 0;
    }
    for (int k = 0; k < PHI_KINDS; k++) sum->phi[k] += it->phi[k];
    if ((long long)it->chars < st->pc->min_chars) {
        sum->too_short++;
        return 0;
    }
    if (st->pc->dedup) {
        int dup = doc_hash_set_insert(&st->seen, it->hash);
        if (dup < 0) return err_set("prep: out of memory");
        if (dup) {
            sum->duplicates++;
            return 0;
        }
    }
    it->split = doc_hash_unit(it->hash) < st->pc->val_fraction ? 1 : 0;
    return 0;
}

static int prep_flush_batch(prep_state *st) {
    long n = (long)st->n_items;
    work_item *items = st->items;
#pragma omp parallel for schedule(dynamic, 4)
    for (long i = 0; i < n; i++) phase_clean(st, &items[i]);
    int rc = 0;
    for (long i = 0; i < n && !rc; i++) rc = decide(st, &items[i]);
    int failed = 0;
    char msg[512] = "";
    if (!rc) {
#pragma omp parallel for schedule(dynamic, 4)
        for (long i = 0; i < n; i++) {
            if (items[i].split < 0) continue;
            if (phase_tokenize(st, &items[i])) {
#pragma omp critical(prep_error)
                if (!failed) {
                    failed = 1;
                    snprintf(msg, sizeof msg, "%s: %s", items[i].doc.where, err_msg());
                }
            }
        }
        if (failed) rc = err_set("%s", msg);
    }
    prep_summary *sum = st->sum;
    for (long i = 0; i < n && !rc; i++) {
        work_item *it = &items[i];
        if (it->split < 0) continue;
        uint64_t trained = 0, tokens;
        if (it->status == ITEM_MALFORMED) {  // found while tokenizing a pair
            rc = ingest_malformed(&st->ic, "%s: %s", it->doc.where, it->why);
            continue;
        } else if (it->pair) {
            const pair_item *p = it->pair;
            size_t np = p->prompt_len;
            if (shard_writer_add_pair(st->w[it->split], p->ids[0].data, np, p->ids[0].data + np,
                                      p->ids[0].len - np, p->ids[1].data + np, p->ids[1].len - np)) {
                rc = -1;
                break;
            }
            tokens = p->ids[0].len + p->ids[1].len - np;
            trained = tokens - np;
            sum->pairs[it->split]++;
        } else {
            if (shard_writer_add(st->w[it->split], it->ids.data, it->trained, it->ids.len)) {
                rc = -1;
                break;
            }
            for (size_t k = 1; k < it->ids.len; k++) trained += it->trained[k];
            tokens = it->ids.len;
        }
        sum->kept++;
        sum->docs[it->split]++;
        sum->tokens[it->split] += tokens;
        sum->trained[it->split] += trained;
        st->file_kept[it->source]++;
    }
    for (long i = 0; i < n; i++) item_free(&items[i]);
    st->n_items = 0;
    st->batch_bytes = 0;
    if (!rc && st->progress && n > 0) {
        prep_sync_counts(st);
        st->progress(st->user, sum, st->files[st->cur_source], 0);
    }
    return rc;
}

// Expands every input's path (glob patterns sorted, as glob(3) does) into the file list.
static int expand_inputs(prep_state *st) {
    const prep_config *pc = st->pc;
    for (int i = 0; i < pc->n_inputs; i++) {
        glob_t g;
        const char *pat = pc->inputs[i].path;
        int rc = glob(pat, GLOB_ERR, NULL, &g);
        if (rc == GLOB_NOMATCH) return err_set("%s: no such file (or no file matches the pattern)", pat);
        if (rc) return err_set("%s: cannot expand the pattern", pat);
        for (size_t k = 0; k < g.gl_pathc; k++) {
            if (path_is_dir(g.gl_pathv[k])) {
                globfree(&g);
                return err_set("%s: is a directory (use a pattern such as %s/*.xml)", pat, pat);
            }
            if (prep_add_file(st, g.gl_pathv[k], i)) {
                globfree(&g);
                return -1;
            }
        }
        globfree(&g);
    }
    return 0;
}

// True for what a prep run writes into a shard directory: manifest.json and
// <split>-NNNNN.mtshard, or either of them with an atomic writer's ".tmp.<pid>" suffix.
static int is_shard_dir_entry(const char *name) {
    size_t n = strlen(name);
    const char *tmp = strstr(name, ".tmp.");
    if (tmp && tmp[5] && strspn(tmp + 5, "0123456789") == strlen(tmp + 5)) n = (size_t)(tmp - name);
    if (n == strlen(SHARD_MANIFEST) && !strncmp(name, SHARD_MANIFEST, n)) return 1;
    size_t split = !strncmp(name, "train-", 6) ? 6 : !strncmp(name, "val-", 4) ? 4 : 0;
    size_t digits = split ? strspn(name + split, "0123456789") : 0;
    return digits > 0 && n == split + digits + strlen(".mtshard") &&
           !strncmp(name + split + digits, ".mtshard", strlen(".mtshard"));
}

// prep replaces out_dir as a whole, so an existing one must be empty or a shard directory:
// it never deletes files it did not write.
static int check_out_dir(const char *dir) {
    if (!path_exists(dir)) return 0;
    if (!path_is_dir(dir)) return err_set("%s: exists and is not a directory", dir);
    DIR *d = opendir(dir);
    if (!d) return err_set("%s: cannot list: %s", dir, strerror(errno));
    int rc = 0;
    for (struct dirent *e; !rc && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || is_shard_dir_entry(e->d_name))
            continue;
        rc = err_set("%s: holds %s, which is not a shard file: prep replaces the whole directory, "
                     "so out_dir must be new, empty or an earlier prep's output",
                     dir, e->d_name);
    }
    closedir(d);
    return rc;
}

static int setup(prep_state *st) {
    const prep_config *pc = st->pc;
    if (expand_inputs(st)) return -1;
    st->sum->n_files_total = st->n_files;
    st->tok = tokenizer_load(pc->tokenizer);
    if (!st->tok) return -1;
    int chat = 0;
    for (int i = 0; i < pc->n_inputs; i++) chat |= input_format_is_chat(pc->inputs[i].format);
    if (chat) {
        if (chat_template_init(&st->tpl, pc->template_name, st->tok)) return err_prefix("%s", pc->tokenizer);
        st->has_tpl = 1;
        snprintf(st->sum->template_name, sizeof st->sum->template_name, "%s", chat_template_name(&st->tpl));
    }
    if (pc->scrub_phi && !(st->phi = phi_scrubber_new())) return -1;
    // The shards and the manifest are written into <out_dir>.partial, which is published as
    // out_dir only once complete: a crash or a full disk leaves an earlier out_dir as it was.
    if (check_out_dir(pc->out_dir) || dir_partial_begin(st->dir, sizeof st->dir, pc->out_dir))
        return -1;
    st->dir_made = 1;
    for (int s = 0; s < 2; s++) {
        st->w[s] = shard_writer_open(st->dir, s ? "val" : "train", (uint64_t)pc->shard_tokens,
                                     SHARD_DEFAULT_FRAME_TOKENS);
        if (!st->w[s]) return -1;
    }
    return 0;
}

static int run_files(prep_state *st) {
    prep_summary *sum = st->sum;
    st->ic.emit = on_document;
    st->ic.user = st;
    st->ic.strict = st->pc->strict;
    for (int f = 0; f < st->n_files; f++) {
        const prep_input *in = &st->pc->inputs[st->file_input[f]];
        st->cur_source = f;
        st->ic.text_field = in->text_field;
        uint64_t before = st->ic.n_records;
        if (ingest_file(&st->ic, st->files[f], in->format) || prep_flush_batch(st)) return -1;
        st->file_records[f] = st->ic.n_records - before;
        sum->files++;
        prep_sync_counts(st);
        if (st->progress) st->progress(st->user, sum, st->files[f], 0);
    }
    return 0;
}

int prep_run(const prep_config *pc, prep_progress_fn progress, void *user, prep_summary *out) {
    memset(out, 0, sizeof *out);
    prep_state st = {0};
    st.pc = pc;
    st.sum = out;
    st.progress = progress;
    st.user = user;
    st.t0 = clock_now_s();
    int rc = setup(&st) || run_files(&st);
    if (!rc) rc = shard_writer_finish(st.w[0]) || shard_writer_finish(st.w[1]);
    prep_sync_counts(&st);
    if (!rc && out->kept == 0)
        rc = err_set("%s: no documents left (read %llu records: %llu malformed, %llu empty, %llu shorter "
                     "than min_chars, %llu duplicates)%s%s", pc->out_dir, (unsigned long long)out->records,
                     (unsigned long long)out->malformed, (unsigned long long)out->empty,
                     (unsigned long long)out->too_short, (unsigned long long)out->duplicates,
                     out->first_malformed[0] ? "; first malformed: " : "", out->first_malformed);
    if (!rc) rc = prep_write_manifest(&st) || dir_publish(st.dir, pc->out_dir);
    if (rc && st.dir_made) {
        // Free the space of the unfinished shards, keeping the error that stopped the run.
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", err_msg());
        for (int s = 0; s < 2; s++) shard_writer_free(st.w[s]), st.w[s] = NULL;
        dir_remove_recursive(st.dir);
        err_set("%s", msg);
    }
    if (!rc && progress) progress(user, out, NULL, 1);
    for (size_t i = 0; i < st.n_items; i++) item_free(&st.items[i]);
    free(st.items);
    for (int s = 0; s < 2; s++) shard_writer_free(st.w[s]);
    if (st.has_tpl) chat_template_free(&st.tpl);
    phi_scrubber_free(st.phi);
    tokenizer_free(st.tok);
    doc_hash_set_free(&st.seen);
    prep_free_files(&st);
    return rc ? -1 : 0;
}

static void prep_sync_counts(prep_state *st) {
    prep_summary *sum = st->sum;
    sum->records = st->ic.n_records;
    sum->malformed = st->ic.n_malformed;
    sum->empty = st->ic.n_empty + st->empty_cleaned;
    sum->bytes_in = st->ic.bytes_in;
    memcpy(sum->first_malformed, st->ic.first_malformed, sizeof sum->first_malformed);
    sum->seconds = clock_now_s() - st->t0;
}
