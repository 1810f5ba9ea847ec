// libFuzzer harness: the shard reader and the manifest (a directory written by `medtune prep`).
// The input is a small archive of the files of one shard directory:
//   byte 0    flags: bit 0 = repair checksums and sizes before reading (below), bit 1 = JSON
//             output of `medtune info`
//   then, repeated: a file name (NUL-terminated, [A-Za-z0-9._-], at most 63 bytes), its
//             length (u32 little-endian) and its bytes
// The files are written to a scratch directory emptied of the previous input's files (the
// reader takes a directory path), then both splits are opened and every window (up to 64) is
// read with masks, document indices and positions, and `medtune info` describes and verifies
// the directory.
// Every shard region is CRC-32C protected and the manifest repeats each shard's size, so a
// mutated file almost always stops at the first checksum. With bit 0 the harness recomputes
// them as a writer would (each frame's CRC when the frame decodes, the index CRC, the footer
// CRC, and the manifest's "bytes" of each listed file): the fuzzer then reaches what lies
// behind them, which is what a deliberately crafted file would reach.
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include "common/error.h"
#include "common/fileio.h"
#include "common/str.h"
#include "data_prep/shard_format.h"
#include "data_prep/shard_info.h"
#include "data_prep/shard_reader.h"
#include "tests/fuzz/fuzz_common.h"

#define MAX_FILES 8

typedef struct {
    char name[64];
    uint8_t *data;
    size_t size;
} archive_file;

static int name_ok(const char *s) {
    if (!*s || !strcmp(s, ".") || !strcmp(s, "..")) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '.' || *s == '_' || *s == '-'))
            return 0;
    return 1;
}

static size_t archive_parse(const uint8_t *p, size_t size, archive_file *files) {
    size_t n = 0, at = 0;
    while (n < MAX_FILES && at < size) {
        const uint8_t *nul = memchr(p + at, 0, size - at);
        size_t name_len = nul ? (size_t)(nul - (p + at)) : 0;
        if (!nul || name_len >= sizeof files[n].name || size - at - name_len - 1 < 4) break;
        memcpy(files[n].name, p + at, name_len + 1);
        at += name_len + 1;
        size_t len = get_u32le(p + at);
        at += 4;
        if (len > size - at) len = size - at;
        files[n].data = (uint8_t *)p + at;  // copied before any repair (see main)
        files[n].size = len;
        at += len;
        if (name_ok(files[n].name)) n++;
    }
    return n;
}

// Recomputes the checksums of a shard: the footer's always (so inconsistent layouts reach
// the reader's checks), the frames' and the index's when the layout is within the file.
static void shard_repair(uint8_t *d, size_t size) {
    if (size < SHARD_FOOTER_SIZE) return;
    uint8_t *ft = d + size - SHARD_FOOTER_SIZE;
    uint64_t frame_tokens = get_u32le(ft + 12), n_docs = get_u64le(ft + 24);
    uint64_t n_frames = get_u32le(ft + 32), index_offset = get_u64le(ft + 40);
    uint64_t body = size - SHARD_FOOTER_SIZE;
    if (n_docs > body / 8 || n_frames > body / SHARD_INDEX_ENTRY_SIZE || index_offset > body ||
        body - index_offset != n_frames * SHARD_INDEX_ENTRY_SIZE + n_docs * 8) {
        put_u32le(ft + 60, crc32c(0, ft, 60));
        return;
    }
    uint8_t *index = d + index_offset;
    size_t cap = frame_tokens <= (1u << 20) ? (size_t)frame_tokens * 4 : 0;
    uint8_t *words = malloc(cap ? cap : 1);
    if (!words) fuzz_fail("out of memory");
    for (uint64_t f = 0; f < n_frames; f++) {
        uint8_t *e = index + f * SHARD_INDEX_ENTRY_SIZE;
        uint64_t off = get_u64le(e), csize = get_u32le(e + 8);
        if (off > body || csize > body - off) continue;
        size_t got = ZSTD_decompress(words, cap, d + off, csize);
        if (ZSTD_isError(got)) continue;
        put_u32le(e + 12, crc32c(crc32c(0, d + off, csize), words, got));
    }
    free(words);
    put_u32le(ft + 36, crc32c(0, index, n_frames * SHARD_INDEX_ENTRY_SIZE + n_docs * 8));
    put_u32le(ft + 60, crc32c(0, ft, 60));
}

// Sets "bytes" of every manifest shard entry that names a file of the archive to its size.
static char *manifest_repair(const archive_file *m, const archive_file *files, size_t n) {
    char *text = fuzz_cstr(m->data, m->size);
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root) return NULL;
    const cJSON *splits = cJSON_GetObjectItemCaseSensitive(root, "splits");
    for (const cJSON *sp = cJSON_IsObject(splits) ? splits->child : NULL; sp; sp = sp->next) {
        const cJSON *shards = cJSON_GetObjectItemCaseSensitive(sp, "shards");
        for (cJSON *e = cJSON_IsArray(shards) ? shards->child : NULL; e; e = e->next) {
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "file");
            for (size_t i = 0; cJSON_IsString(name) && i < n; i++)
                if (!strcmp(files[i].name, name->valuestring) && cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(e, "bytes")))
                    cJSON_ReplaceItemInObjectCaseSensitive(e, "bytes", cJSON_CreateNumber((double)files[i].size));
        }
    }
    char *out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return out;
}

static void read_split(const char *dir, const char *split) {
    shard_set s;
    if (shard_set_open(&s, dir, split) != 0) {
        fuzz_expect_error("shard_set_open");
        return;
    }
    enum { T = 8 };
    uint32_t tokens[T + 1], doc[T], pos[T];
    uint8_t mask[T];
    int64_t n = shard_set_n_windows(&s, T);
    if (n < 0) fuzz_expect_error("shard_set_n_windows");
    for (int64_t i = 0; i < n && i < 64; i++) {
        if (shard_set_window(&s, T, (uint64_t)i, tokens, mask, doc, pos) != 0) {
            fuzz_expect_error("shard_set_window");
            break;
        }
        for (int j = 0; j < T; j++)
            if (pos[j] > (uint32_t)j)  // counted from the document's start or the window's
                fuzz_fail("window %lld: position %u at index %d", (long long)i, pos[j], j);
    }
    uint64_t total = shard_set_n_tokens(&s);
    uint32_t words[16];
    if (total >= 16 && shard_set_read(&s, total - 16, 16, words) != 0) fuzz_expect_error("shard_set_read");
    if (shard_set_read(&s, total, 1, words) == 0) fuzz_fail("a read past the end succeeded");
    shard_set_close(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int quiet;
    if (!quiet) {
        // `medtune info` prints to stdout; the fuzzer's own output goes to stderr.
        int fd = open("/dev/null", O_WRONLY);
        if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0) fuzz_fail("cannot silence stdout");
        close(fd);
        quiet = 1;
    }
    if (size == 0) return 0;
    err_clear();
    archive_file files[MAX_FILES];
    size_t n = archive_parse(data + 1, size - 1, files);
    // One directory for every input. The readers only read it, so removing the files of the
    // previous input leaves it empty: cheaper than removing and recreating the directory.
    static char dir[4096];
    static char written[MAX_FILES][64];
    static size_t n_written;
    char path[4096];
    if (!dir[0]) {
        fuzz_path(dir, sizeof dir, "shards");
        if (dir_create(dir) != 0) fuzz_fail("%s", err_msg());
    }
    for (size_t i = 0; i < n_written; i++)
        if (path_join(path, sizeof path, dir, written[i]) || (unlink(path) != 0 && errno != ENOENT))
            fuzz_fail("cannot remove %s", path);
    n_written = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t *copy = malloc(files[i].size ? files[i].size : 1);
        if (!copy) fuzz_fail("out of memory");
        memcpy(copy, files[i].data, files[i].size);
        files[i].data = copy;
        if ((data[0] & 1) && str_has_suffix(files[i].name, ".mtshard")) shard_repair(copy, files[i].size);
    }
    for (size_t i = 0; i < n; i++) {
        char *fixed = (data[0] & 1) && !strcmp(files[i].name, SHARD_MANIFEST) ? manifest_repair(&files[i], files, n) : NULL;
        if (path_join(path, sizeof path, dir, files[i].name)) fuzz_fail("path");
        fuzz_write_path(path, fixed ? fixed : (char *)files[i].data, fixed ? strlen(fixed) : files[i].size);
        memcpy(written[n_written++], files[i].name, sizeof written[0]);
        free(fixed);
    }
    for (size_t i = 0; i < n; i++) free(files[i].data);
    read_split(dir, "train");
    read_split(dir, "val");
    if (shard_dir_print(dir, (data[0] >> 1) & 1) != 0) fuzz_expect_error("shard_dir_print");
    return 0;
}
