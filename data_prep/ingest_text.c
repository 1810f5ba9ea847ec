// Plain text: one document per block of non-blank lines; blocks are separated by one or
// more blank (whitespace-only) lines. Streaming keeps memory bounded by the largest block,
// and paragraph-sized documents make exact dedup catch repeated boilerplate. A corpus that
// should stay whole per file can be given as JSONL instead.
#include <stdio.h>

#include "common/error.h"
#include "common/strbuf.h"
#include "data_prep/ingest.h"
#include "data_prep/line_reader.h"

static int is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\f' && s[i] != '\v') return 0;
    return 1;
}

static int emit_block(ingest_ctx *ic, strbuf *block, const char *path, uint64_t line) {
    if (block->len == 0) return 0;
    ic->n_records++;
    document d = {0};
    d.text = block->data;
    d.len = block->len;
    snprintf(d.where, sizeof d.where, "%s:%llu", path, (unsigned long long)line);
    int rc = ic->emit(ic->user, &d);
    strbuf_clear(block);
    return rc;
}

int ingest_text(ingest_ctx *ic, const char *path) {
    line_reader r;
    if (line_reader_open(&r, path)) return -1;
    strbuf block = {0};
    uint64_t block_line = 0, last_bytes = 0;
    const char *line;
    size_t len;
    int rc = 0, got;
    while ((got = line_reader_next(&r, &line, &len)) == 1) {
        if (is_blank(line, len)) {
            if ((rc = emit_block(ic, &block, path, block_line))) break;
            ic->bytes_in += r.bytes - last_bytes;
            last_bytes = r.bytes;
            continue;
        }
        if (block.len == 0) block_line = r.line;
        else if ((rc = strbuf_append(&block, "\n", 1))) break;
        if ((rc = strbuf_append(&block, line, len))) break;
    }
    if (!rc && got < 0) rc = -1;
    if (!rc) rc = emit_block(ic, &block, path, block_line);
    ic->bytes_in += r.bytes - last_bytes;
    strbuf_free(&block);
    line_reader_close(&r);
    return rc;
}
