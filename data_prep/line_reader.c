#include "data_prep/line_reader.h"

#include <errno.h>
#include <libxml/xmlIO.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/error.h"
#include "common/strbuf.h"

enum { READ_CHUNK = 1 << 18 };

int line_reader_open(line_reader *r, const char *path) {
    memset(r, 0, sizeof *r);
    snprintf(r->path, sizeof r->path, "%s", path);
    struct stat st;
    if (stat(path, &st) != 0) return err_set("%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return err_set("%s: not a regular file", path);
    xmlParserInputBufferPtr in = xmlParserInputBufferCreateFilename(path, XML_CHAR_ENCODING_NONE);
    if (!in) return err_set("%s: cannot open", path);
    r->in = in;
    r->cap = READ_CHUNK * 2;
    r->buf = malloc(r->cap);
    if (!r->buf) {
        line_reader_close(r);
        return err_set("%s: out of memory", path);
    }
    return 0;
}

// Appends up to READ_CHUNK more bytes to the buffer; sets eof at the end of the input.
static int fill(line_reader *r) {
    if (r->start > 0) {
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->end -= r->start;
        r->start = 0;
    }
    char *nb = vec_grow(r->buf, &r->cap, r->end + READ_CHUNK, 1);
    if (!nb) return err_set("%s: out of memory (line too long?)", r->path);
    r->buf = nb;
    xmlParserInputBufferPtr in = r->in;
    int got = xmlParserInputBufferRead(in, READ_CHUNK);
    if (got < 0) return err_set("%s: read error (truncated or corrupt compressed file?)", r->path);
    size_t avail = xmlBufUse(in->buffer);
    if (avail == 0) {
        r->eof = 1;
        return 0;
    }
    if (avail > r->cap - r->end) avail = r->cap - r->end;
    memcpy(r->buf + r->end, xmlBufContent(in->buffer), avail);
    xmlBufShrink(in->buffer, avail);
    r->end += avail;
    return 0;
}

int line_reader_next(line_reader *r, const char **line, size_t *len) {
    size_t scanned = r->start;
    for (;;) {
        char *nl = memchr(r->buf + scanned, '\n', r->end - scanned);
        if (nl) {
            size_t n = (size_t)(nl - (r->buf + r->start));
            *line = r->buf + r->start;
            r->bytes += n + 1;
            r->start += n + 1;
            if (n > 0 && (*line)[n - 1] == '\r') n--;
            *len = n;
            r->line++;
            return 1;
        }
        if (r->eof) {
            if (r->end == r->start) return 0;
            size_t n = r->end - r->start;
            *line = r->buf + r->start;
            r->bytes += n;
            r->start = r->end;
            if ((*line)[n - 1] == '\r') n--;
            *len = n;
            r->line++;
            return 1;
        }
        scanned = r->end - r->start;
        if (fill(r)) return -1;
        scanned += r->start;
    }
}

void line_reader_close(line_reader *r) {
    if (r->in) xmlFreeParserInputBuffer(r->in);
    free(r->buf);
    r->in = NULL;
    r->buf = NULL;
}
