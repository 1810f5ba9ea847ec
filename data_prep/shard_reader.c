#include "data_prep/shard_reader.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "common/error.h"
#include "common/json_number.h"
#include "common/sha256.h"
#include "common/strbuf.h"
#include "data_prep/shard_format.h"

// Shard sizes are written as JSON numbers, exact up to 2^53 (a petabyte of tokens).
static int manifest_u64(const cJSON *obj, const char *key, uint64_t *out, const char *file) {
    long long n;
    if (!json_whole(cJSON_GetObjectItemCaseSensitive(obj, key), 0, 9007199254740992.0, &n))
        return err_set("%s: manifest field '%s' missing or not a whole number in [0, 2^53]", file,
                       key);
    *out = (uint64_t)n;
    return 0;
}

static int open_file(shard_set *s, shard_set_file *f, const cJSON *entry, const char *manifest) {
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(entry, "file");
    const cJSON *sha = cJSON_GetObjectItemCaseSensitive(entry, "sha256");
    uint64_t want_tokens = 0, want_bytes = 0;
    if (!cJSON_IsString(name) || !cJSON_IsString(sha) || strchr(name->valuestring, '/') ||
        manifest_u64(entry, "n_tokens", &want_tokens, manifest) ||
        manifest_u64(entry, "bytes", &want_bytes, manifest))
        return err_set("%s: malformed shard entry", manifest);
    if (path_join(f->path, sizeof f->path, s->dir, name->valuestring) || mapped_file_open(&f->map, f->path))
        return -1;
    if (f->map.size != want_bytes)
        return err_set("%s: %llu bytes, the manifest says %llu (truncated or replaced shard)", f->path,
                       (unsigned long long)f->map.size, (unsigned long long)want_bytes);
    if (f->map.size < SHARD_FOOTER_SIZE) return err_set("%s: too short for a shard", f->path);
    shard_footer ft;
    if (shard_footer_decode(&ft, f->map.data + f->map.size - SHARD_FOOTER_SIZE, f->path)) return -1;
    if (ft.n_tokens != want_tokens)
        return err_set("%s: %llu tokens, the manifest says %llu", f->path, (unsigned long long)ft.n_tokens,
                       (unsigned long long)want_tokens);
    if (ft.frame_tokens != s->frame_tokens)
        return err_set("%s: frame size %u differs from the manifest's %u", f->path, ft.frame_tokens,
                       s->frame_tokens);
    uint64_t index_bytes = (uint64_t)ft.n_frames * SHARD_INDEX_ENTRY_SIZE, doc_bytes = ft.n_docs * 8;
    // Bounded first so the sum below cannot wrap around to the file size.
    if (ft.n_docs > f->map.size / 8 || ft.index_offset > f->map.size ||
        ft.index_offset + index_bytes + doc_bytes + SHARD_FOOTER_SIZE != f->map.size ||
        (uint64_t)ft.n_frames != (ft.n_tokens + ft.frame_tokens - 1) / ft.frame_tokens)
        return err_set("%s: inconsistent shard footer (corrupted shard)", f->path);
    const uint8_t *index = f->map.data + ft.index_offset;
    if (crc32c(0, index, index_bytes + doc_bytes) != ft.index_crc)
        return err_set("%s: frame index checksum mismatch (corrupted shard)", f->path);
    f->index = index;
    f->n_frames = ft.n_frames;
    f->first_token = s->n_tokens;
    f->n_tokens = ft.n_tokens;
    if ((s->whole_packing || s->pairs) && ft.n_docs) {
        uint64_t *d = vec_grow(s->doc_starts, &s->cap_doc_starts, s->n_docs + ft.n_docs, sizeof *d);
        if (!d) return err_set("%s: out of memory", f->path);
        s->doc_starts = d;
        const uint8_t *table = index + index_bytes;
        for (uint64_t i = 0; i < ft.n_docs; i++) d[s->n_docs + i] = s->n_tokens + get_u64le(table + 8 * i);
    }
    s->n_tokens += ft.n_tokens;
    s->n_docs += ft.n_docs;
    s->n_trained += ft.n_trained;
    return 0;
}

static int read_manifest(shard_set *s, cJSON **root, char *mpath, size_t n) {
    if (path_join(mpath, n, s->dir, SHARD_MANIFEST)) return -1;
    char *text = NULL;
    if (!path_exists(mpath))
        return err_set("%s: no %s (not a shard directory, or prep did not finish)", s->dir, SHARD_MANIFEST);
    if (file_read_all(mpath, &text, NULL)) return -1;
    *root = cJSON_Parse(text);
    free(text);
    if (!*root) return err_set("%s: invalid JSON", mpath);
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(*root, "format");
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(*root, "version");
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "medtune-shards"))
        return err_set("%s: not a medtune shard manifest", mpath);
    if (!cJSON_IsNumber(ver) ||
        (ver->valueint != SHARD_MANIFEST_VERSION && ver->valueint != SHARD_MANIFEST_VERSION_PAIRS))
        return err_set("%s: manifest version %d, this medtune reads %d and %d", mpath,
                       cJSON_IsNumber(ver) ? ver->valueint : -1, SHARD_MANIFEST_VERSION,
                       SHARD_MANIFEST_VERSION_PAIRS);
    return 0;
}

int shard_set_open(shard_set *s, const char *dir, const char *split) {
    memset(s, 0, sizeof *s);
    snprintf(s->dir, sizeof s->dir, "%s", dir);
    snprintf(s->split, sizeof s->split, "%s", split);
    for (int i = 0; i < SHARD_CACHE_FRAMES; i++) s->cache[i].file = -1;
    char mpath[4200];
    cJSON *root = NULL;
    if (read_manifest(s, &root, mpath, sizeof mpath)) {
        cJSON_Delete(root);
        return -1;
    }
    int rc = -1;
    const cJSON *tok = cJSON_GetObjectItemCaseSensitive(root, "tokenizer");
    const cJSON *fp = cJSON_GetObjectItemCaseSensitive(tok, "fingerprint");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(tok, "vocab_size");
    const cJSON *eos = cJSON_GetObjectItemCaseSensitive(tok, "eos_id");
    const cJSON *packing = cJSON_GetObjectItemCaseSensitive(root, "packing");
    const cJSON *ft = cJSON_GetObjectItemCaseSensitive(root, "frame_tokens");
    const cJSON *splits = cJSON_GetObjectItemCaseSensitive(root, "splits");
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(splits, split);
    const cJSON *shards = cJSON_GetObjectItemCaseSensitive(sp, "shards");
    if (!cJSON_IsString(fp) || strlen(fp->valuestring) != 64 || !cJSON_IsNumber(vocab) ||
        !cJSON_IsString(packing) || !cJSON_IsNumber(ft) || ft->valueint <= 0) {
        err_set("%s: manifest lacks tokenizer.fingerprint, tokenizer.vocab_size, packing or frame_tokens", mpath);
        goto done;
    }
    if (ft->valuedouble > SHARD_MAX_FRAME_TOKENS) {
        err_set("%s: frame_tokens %.0f is out of range [1, %u]", mpath, ft->valuedouble,
                SHARD_MAX_FRAME_TOKENS);
        goto done;
    }
    if (!cJSON_IsArray(shards)) {
        err_set("%s: no split '%s'", mpath, split);
        goto done;
    }
    memcpy(s->tokenizer_fingerprint, fp->valuestring, 65);
    s->vocab_size = vocab->valueint;
    s->pad_id = cJSON_IsNumber(eos) && eos->valueint >= 0 ? eos->valueint : 0;
    if (s->vocab_size <= 0 || s->pad_id >= s->vocab_size) {
        err_set("%s: tokenizer.vocab_size %d and eos_id %d: the vocabulary must hold the EOS id",
                mpath, s->vocab_size, s->pad_id);
        goto done;
    }
    s->whole_packing = !strcmp(packing->valuestring, "whole");
    s->pairs = !strcmp(packing->valuestring, "pairs");
    s->frame_tokens = (uint32_t)ft->valueint;
    s->n_files = cJSON_GetArraySize(shards);
    s->files = calloc((size_t)s->n_files + 1, sizeof *s->files);
    s->dctx = ZSTD_createDCtx();
    if (!s->files || !s->dctx) {
        err_set("%s: out of memory", dir);
        goto done;
    }
    for (int i = 0; i < s->n_files; i++) s->files[i].map.fd = -1;
    sha256_ctx sha;
    sha256_init(&sha);
    sha256_update(&sha, s->tokenizer_fingerprint, 64);
    sha256_update(&sha, split, strlen(split) + 1);
    int i = 0;
    for (const cJSON *e = shards->child; e; e = e->next, i++) {
        if (open_file(s, &s->files[i], e, mpath)) goto done;
        const char *h = cJSON_GetObjectItemCaseSensitive(e, "sha256")->valuestring;
        sha256_update(&sha, h, strlen(h));
    }
    if (s->pairs && s->n_docs % 3) {
        err_set("%s: %s split has %llu documents, not three per preference pair", mpath, split,
                (unsigned long long)s->n_docs);
        goto done;
    }
    uint8_t digest[32];
    sha256_final(&sha, digest);
    sha256_digest_to_hex(digest, s->fingerprint);
    rc = 0;
done:
    cJSON_Delete(root);
    if (rc) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", err_msg());
        shard_set_close(s);
        err_set("%s", msg);
    }
    return rc;
}

void shard_set_close(shard_set *s) {
    for (int i = 0; s->files && i < s->n_files; i++)
        if (s->files[i].map.fd >= 0 || s->files[i].map.data) mapped_file_close(&s->files[i].map);
    free(s->files);
    for (int i = 0; i < SHARD_CACHE_FRAMES; i++) free(s->cache[i].words);
    free(s->doc_starts);
    free(s->pack_first);
    ZSTD_freeDCtx(s->dctx);
    memset(s, 0, sizeof *s);
}

int shard_set_check_model_vocab(const shard_set *s, int model_vocab) {
    if (s->vocab_size <= model_vocab) return 0;
    return err_set("%s/%s: tokenizer.vocab_size %d is larger than the model's vocabulary (%d ids): "
                   "the shards were made for another model", s->dir, SHARD_MANIFEST, s->vocab_size,
                   model_vocab);
}

uint64_t shard_set_n_tokens(const shard_set *s) { return s->n_tokens; }
const char *shard_set_fingerprint(const shard_set *s) { return s->fingerprint; }
const char *shard_set_tokenizer_fingerprint(const shard_set *s) { return s->tokenizer_fingerprint; }

static int file_of(const shard_set *s, uint64_t g) {
    int lo = 0, hi = s->n_files - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (s->files[mid].first_token <= g) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

static const shard_frame_slot *get_frame(shard_set *s, int fi, uint32_t frame) {
    shard_frame_slot *victim = &s->cache[0];
    for (int i = 0; i < SHARD_CACHE_FRAMES; i++) {
        shard_frame_slot *c = &s->cache[i];
        if (c->file == fi && c->frame == frame && c->words) {
            c->stamp = ++s->clock;
            return c;
        }
        if (c->stamp < victim->stamp) victim = c;
    }
    const shard_set_file *f = &s->files[fi];
    const uint8_t *e = f->index + (size_t)frame * SHARD_INDEX_ENTRY_SIZE;
    uint64_t off = get_u64le(e);
    uint32_t csize = get_u32le(e + 8), crc = get_u32le(e + 12);
    uint64_t first = (uint64_t)frame * s->frame_tokens;
    uint32_t n = (uint32_t)(f->n_tokens - first < s->frame_tokens ? f->n_tokens - first : s->frame_tokens);
    if (off > f->map.size || csize > f->map.size - off)  // `off + csize` could wrap
        return err_set("%s: frame %u out of bounds (corrupted shard)", f->path, frame), NULL;
    if (!victim->words) {
        victim->words = malloc((size_t)s->frame_tokens * 4);
        if (!victim->words) return err_set("%s: out of memory", f->path), NULL;
    }
    victim->file = -1;
    size_t got = ZSTD_decompressDCtx(s->dctx, victim->words, (size_t)s->frame_tokens * 4, f->map.data + off, csize);
    if (ZSTD_isError(got))
        return err_set("%s: frame %u: corrupted shard (zstd: %s)", f->path, frame, ZSTD_getErrorName(got)), NULL;
    if (got != (size_t)n * 4)
        return err_set("%s: frame %u: %zu bytes decoded, expected %u (corrupted shard)", f->path, frame, got, n * 4), NULL;
    if (crc32c(crc32c(0, f->map.data + off, csize), victim->words, got) != crc)
        return err_set("%s: frame %u: checksum mismatch (corrupted shard)", f->path, frame), NULL;
    uint8_t *le = (uint8_t *)victim->words;
    for (uint32_t i = 0; i < n; i++) victim->words[i] = get_u32le(le + 4 * i);
    // Every id is checked once per decode, so the model's ops can index with them unchecked.
    for (uint32_t i = 0; i < n; i++)
        if ((victim->words[i] & SHARD_TOKEN_MASK) >= (uint32_t)s->vocab_size)
            return err_set("%s: token %llu holds id %u, outside the vocabulary of %d ids (corrupted "
                           "shard or wrong manifest)", f->path, (unsigned long long)(first + i),
                           victim->words[i] & SHARD_TOKEN_MASK, s->vocab_size), NULL;
    victim->file = fi;
    victim->frame = frame;
    victim->n = n;
    victim->stamp = ++s->clock;
    return victim;
}

int shard_set_read(shard_set *s, uint64_t start, size_t n, uint32_t *words) {
    if (start + n > s->n_tokens || start + n < start)
        return err_set("%s: read of tokens [%llu, %llu) beyond the %s split's %llu tokens", s->dir,
                       (unsigned long long)start, (unsigned long long)(start + n), s->split,
                       (unsigned long long)s->n_tokens);
    while (n > 0) {
        int fi = file_of(s, start);
        uint64_t local = start - s->files[fi].first_token;
        uint32_t frame = (uint32_t)(local / s->frame_tokens), in_frame = (uint32_t)(local % s->frame_tokens);
        const shard_frame_slot *c = get_frame(s, fi, frame);
        if (!c) return -1;
        size_t take = c->n - in_frame;
        if (take > n) take = n;
        memcpy(words, c->words + in_frame, take * 4);
        words += take;
        start += take;
        n -= take;
    }
    return 0;
}

static int build_packing(shard_set *s, int seq_len) {
    uint64_t w = (uint64_t)seq_len + 1, fill = 0, n = 0;
    uint64_t *first = malloc((s->n_docs + 1) * sizeof *first);
    if (!first) return err_set("%s: out of memory", s->dir);
    for (uint64_t d = 0; d < s->n_docs; d++) {
        uint64_t end = d + 1 < s->n_docs ? s->doc_starts[d + 1] : s->n_tokens;
        uint64_t len = end - s->doc_starts[d];
        if (len > w) len = w;
        if (d == 0 || fill + len > w) first[n++] = d, fill = 0;
        fill += len;
    }
    first[n] = s->n_docs;
    free(s->pack_first);
    s->pack_first = first;
    s->n_pack_windows = n;
    s->pack_seq_len = seq_len;
    return 0;
}

int64_t shard_set_n_windows(shard_set *s, int seq_len) {
    if (seq_len < 1) return err_set("seq_len must be positive"), -1;
    if (s->pairs)
        return err_set("%s: holds preference pairs (packing \"pairs\"), not windows of "
                       "documents: train them with objective dpo or orpo, evaluate them with "
                       "medtune eval --preference", s->dir), -1;
    if (!s->whole_packing) return s->n_tokens > 0 ? (int64_t)((s->n_tokens - 1) / (uint64_t)seq_len) : 0;
    if (s->pack_seq_len != seq_len && build_packing(s, seq_len)) return -1;
    return (int64_t)s->n_pack_windows;
}

int shard_set_window(shard_set *s, int seq_len, uint64_t i, uint32_t *tokens, uint8_t *mask,
                     uint32_t *doc, uint32_t *pos) {
    int64_t nw = shard_set_n_windows(s, seq_len);
    if (nw < 0) return -1;
    if (i >= (uint64_t)nw)
        return err_set("%s: window %llu out of range (%s split has %lld windows of %d tokens)", s->dir,
                       (unsigned long long)i, s->split, (long long)nw, seq_len);
    uint64_t w = (uint64_t)seq_len + 1;
    uint32_t *words = malloc(w * sizeof *words);
    if (!words) return err_set("%s: out of memory", s->dir);
    size_t filled = 0;
    if (!s->whole_packing) {
        if (shard_set_read(s, i * (uint64_t)seq_len, w, words)) return free(words), -1;
        filled = w;
    } else {
        for (uint64_t d = s->pack_first[i]; d < s->pack_first[i + 1]; d++) {
            uint64_t end = d + 1 < s->n_docs ? s->doc_starts[d + 1] : s->n_tokens;
            uint64_t len = end - s->doc_starts[d];
            if (len > w - filled) len = w - filled;
            if (shard_set_read(s, s->doc_starts[d], len, words + filled)) return free(words), -1;
            filled += len;
        }
        // Padding: its own document, never trained.
        for (size_t k = filled; k < w; k++) words[k] = (uint32_t)s->pad_id | (k == filled ? SHARD_DOC_START : 0);
    }
    uint32_t d = 0, p = 0;
    for (size_t k = 0; k < w; k++) {
        if (k > 0 && (words[k] & SHARD_DOC_START)) d++, p = 0;
        if (tokens) tokens[k] = words[k] & SHARD_TOKEN_MASK;
        if (k < (size_t)seq_len) {
            if (doc) doc[k] = d;
            if (pos) pos[k] = p;
        }
        if (k > 0 && mask) mask[k - 1] = k < filled && (words[k] & SHARD_TRAINED) ? 1 : 0;
        p++;
    }
    free(words);
    return 0;
}

uint64_t shard_set_n_pairs(const shard_set *s) { return s->pairs ? s->n_docs / 3 : 0; }

int shard_set_pair(const shard_set *s, uint64_t i, uint64_t start[3], uint64_t len[3]) {
    if (!s->pairs) return err_set("%s: not a preference-pair directory", s->dir);
    if (i >= s->n_docs / 3)
        return err_set("%s: pair %llu out of range (%s split has %llu pairs)", s->dir,
                       (unsigned long long)i, s->split, (unsigned long long)(s->n_docs / 3));
    for (int k = 0; k < 3; k++) {
        uint64_t d = 3 * i + (uint64_t)k;
        start[k] = s->doc_starts[d];
        len[k] = (d + 1 < s->n_docs ? s->doc_starts[d + 1] : s->n_tokens) - start[k];
    }
    return 0;
}

int shard_set_pair_rows(shard_set *s, int seq_len, uint64_t i, uint32_t *tokens, uint8_t *mask) {
    uint64_t start[3], len[3];
    if (seq_len < 1) return err_set("seq_len must be positive");
    if (shard_set_pair(s, i, start, len)) return -1;
    size_t w = (size_t)seq_len + 1;
    if (len[0] >= w) return 1;
    uint32_t *words = malloc(w * sizeof *words);
    if (!words) return err_set("%s: out of memory", s->dir);
    for (int r = 0; r < 2; r++) {
        size_t resp = len[1 + r] < w - len[0] ? (size_t)len[1 + r] : w - (size_t)len[0];
        if (shard_set_read(s, start[0], (size_t)len[0], words) ||
            shard_set_read(s, start[1 + r], resp, words + len[0])) {
            free(words);
            return -1;
        }
        size_t filled = (size_t)len[0] + resp;
        uint32_t *row = tokens + (size_t)r * w;
        for (size_t k = 0; k < w; k++) row[k] = k < filled ? words[k] & SHARD_TOKEN_MASK : (uint32_t)s->pad_id;
        for (size_t k = 1; mask && k < w; k++)
            mask[(size_t)r * (w - 1) + k - 1] = k < filled && (words[k] & SHARD_TRAINED) ? 1 : 0;
    }
    free(words);
    return 0;
}
