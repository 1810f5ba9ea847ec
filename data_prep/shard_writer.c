#include "data_prep/shard_writer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "common/error.h"
#include "common/fileio.h"
#include "common/sha256.h"
#include "common/strbuf.h"
#include "data_prep/shard_format.h"

enum { ZSTD_LEVEL = 3 };

struct shard_writer {
    char dir[4096], split[16];
    uint64_t shard_tokens;
    uint32_t frame_tokens;
    ZSTD_CCtx *cctx;

    // the shard being written
    int open;
    atomic_writer aw;
    sha256_ctx sha;
    uint64_t offset, tokens, trained;
    uint32_t *frame;      // words of the frame being filled
    uint32_t frame_fill;
    uint8_t *index;       // SHARD_INDEX_ENTRY_SIZE bytes per finished frame
    size_t n_frames, cap_frames;
    uint64_t *docs;       // shard-relative starts
    size_t n_docs, cap_docs;
    void *zbuf;
    size_t zcap;

    shard_file_info *files;
    size_t n_files, cap_files;
    uint64_t total_tokens, total_docs;
};

shard_writer *shard_writer_open(const char *dir, const char *split, uint64_t shard_tokens,
                                uint32_t frame_tokens) {
    shard_writer *w = calloc(1, sizeof *w);
    if (!w) return err_set("shard writer: out of memory"), NULL;
    snprintf(w->dir, sizeof w->dir, "%s", dir);
    snprintf(w->split, sizeof w->split, "%s", split);
    w->frame_tokens = frame_tokens;
    if (shard_tokens < frame_tokens) shard_tokens = frame_tokens;
    w->shard_tokens = (shard_tokens + frame_tokens - 1) / frame_tokens * frame_tokens;
    w->frame = malloc((size_t)frame_tokens * sizeof *w->frame);
    w->zcap = ZSTD_compressBound((size_t)frame_tokens * 4);
    w->zbuf = malloc(w->zcap);
    w->cctx = ZSTD_createCCtx();
    if (!w->frame || !w->zbuf || !w->cctx) {
        shard_writer_free(w);
        return err_set("shard writer: out of memory"), NULL;
    }
    ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, ZSTD_LEVEL);
    return w;
}

static int write_bytes(shard_writer *w, const void *data, size_t n) {
    if (atomic_writer_write(&w->aw, data, n)) return -1;
    sha256_update(&w->sha, data, n);
    w->offset += n;
    return 0;
}

static int start_shard(shard_writer *w) {
    shard_file_info *f = vec_grow(w->files, &w->cap_files, w->n_files + 1, sizeof *f);
    if (!f) return err_set("shard writer: out of memory");
    w->files = f;
    shard_file_info *info = &w->files[w->n_files];
    memset(info, 0, sizeof *info);
    snprintf(info->name, sizeof info->name, "%s-%05zu.mtshard", w->split, w->n_files);
    char path[4200];
    if (path_join(path, sizeof path, w->dir, info->name) || atomic_writer_open(&w->aw, path)) return -1;
    sha256_init(&w->sha);
    w->open = 1;
    w->offset = w->tokens = w->trained = 0;
    w->n_frames = w->n_docs = 0;
    w->frame_fill = 0;
    return 0;
}

static int flush_frame(shard_writer *w) {
    if (w->frame_fill == 0) return 0;
    size_t raw = (size_t)w->frame_fill * 4;
    uint8_t *le = (uint8_t *)w->frame;
    for (uint32_t i = 0; i < w->frame_fill; i++) {
        uint32_t v = w->frame[i];
        put_u32le(le + 4 * i, v);
    }
    size_t csize = ZSTD_compress2(w->cctx, w->zbuf, w->zcap, le, raw);
    if (ZSTD_isError(csize)) return err_set("%s: zstd: %s", w->dir, ZSTD_getErrorName(csize));
    uint8_t *idx = vec_grow(w->index, &w->cap_frames, w->n_frames + 1, SHARD_INDEX_ENTRY_SIZE);
    if (!idx) return err_set("shard writer: out of memory");
    w->index = idx;
    uint8_t *e = w->index + w->n_frames * SHARD_INDEX_ENTRY_SIZE;
    put_u64le(e, w->offset);
    put_u32le(e + 8, (uint32_t)csize);
    put_u32le(e + 12, crc32c(crc32c(0, w->zbuf, csize), le, raw));
    w->n_frames++;
    w->frame_fill = 0;
    return write_bytes(w, w->zbuf, csize);
}

static int finish_shard(shard_writer *w) {
    if (flush_frame(w)) return -1;
    uint64_t index_offset = w->offset;
    size_t index_bytes = w->n_frames * SHARD_INDEX_ENTRY_SIZE;
    uint8_t *docs_le = malloc(w->n_docs * 8 + 1);
    if (!docs_le) return err_set("shard writer: out of memory");
    for (size_t i = 0; i < w->n_docs; i++) put_u64le(docs_le + 8 * i, w->docs[i]);
    uint32_t crc = crc32c(crc32c(0, w->index, index_bytes), docs_le, w->n_docs * 8);
    int rc = write_bytes(w, w->index, index_bytes) || write_bytes(w, docs_le, w->n_docs * 8);
    free(docs_le);
    if (rc) return -1;
    shard_footer f = {SHARD_VERSION, w->frame_tokens, (uint32_t)w->n_frames, crc,
                      w->tokens,     w->n_docs,       index_offset,          w->trained};
    uint8_t foot[SHARD_FOOTER_SIZE];
    shard_footer_encode(&f, foot);
    if (write_bytes(w, foot, sizeof foot) || atomic_writer_commit(&w->aw)) return -1;
    w->open = 0;
    shard_file_info *info = &w->files[w->n_files++];
    info->n_tokens = w->tokens;
    info->n_docs = w->n_docs;
    info->n_trained = w->trained;
    info->bytes = w->offset;
    uint8_t digest[32];
    sha256_final(&w->sha, digest);
    sha256_digest_to_hex(digest, info->sha256);
    return 0;
}

// Appends one document; trained[i] (or, without trained, `all_trained`) marks loss targets.
// `first_trained` keeps the mark on the first token, whose predecessor is another segment of
// the same preference pair.
static int add_segment(shard_writer *w, const int32_t *ids, const uint8_t *trained, int all_trained,
                       int first_trained, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || (uint32_t)ids[i] > SHARD_TOKEN_MASK)
            return err_set("%s: token id %d does not fit the shard format", w->dir, ids[i]);
        if (!w->open && start_shard(w)) return -1;
        uint32_t word = (uint32_t)ids[i];
        if (i == 0) {
            word |= SHARD_DOC_START;
            uint64_t *d = vec_grow(w->docs, &w->cap_docs, w->n_docs + 1, sizeof *d);
            if (!d) return err_set("shard writer: out of memory");
            w->docs = d;
            w->docs[w->n_docs++] = w->tokens;
            w->total_docs++;
        }
        if ((i > 0 || first_trained) && (trained ? trained[i] : all_trained)) {
            word |= SHARD_TRAINED;
            w->trained++;
        }
        w->frame[w->frame_fill++] = word;
        w->tokens++;
        w->total_tokens++;
        if (w->frame_fill == w->frame_tokens && flush_frame(w)) return -1;
        if (w->tokens == w->shard_tokens && finish_shard(w)) return -1;
    }
    return 0;
}

int shard_writer_add(shard_writer *w, const int32_t *ids, const uint8_t *trained, size_t n) {
    return add_segment(w, ids, trained, 0, 0, n);
}

int shard_writer_add_pair(shard_writer *w, const int32_t *prompt, size_t n_prompt,
                          const int32_t *chosen, size_t n_chosen, const int32_t *rejected,
                          size_t n_rejected) {
    if (!n_prompt || !n_chosen || !n_rejected)
        return err_set("%s: a preference pair needs a prompt and two non-empty responses", w->dir);
    return add_segment(w, prompt, NULL, 0, 0, n_prompt) ||
           add_segment(w, chosen, NULL, 1, 1, n_chosen) ||
           add_segment(w, rejected, NULL, 1, 1, n_rejected) ? -1 : 0;
}

int shard_writer_finish(shard_writer *w) {
    if (w->open && finish_shard(w)) return -1;
    return 0;
}

size_t shard_writer_count(const shard_writer *w) { return w->n_files; }
const shard_file_info *shard_writer_file(const shard_writer *w, size_t i) { return &w->files[i]; }
uint64_t shard_writer_tokens(const shard_writer *w) { return w->total_tokens; }
uint64_t shard_writer_docs(const shard_writer *w) { return w->total_docs; }

void shard_writer_free(shard_writer *w) {
    if (!w) return;
    if (w->open) atomic_writer_abort(&w->aw);
    ZSTD_freeCCtx(w->cctx);
    free(w->frame);
    free(w->zbuf);
    free(w->index);
    free(w->docs);
    free(w->files);
    free(w);
}
