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
    // libxml2 sizes its own buffer by the read request, and the line buffer grows with what
    // was read: a file smaller than READ_CHUNK (on disk; compressed, it is read in more steps)
    // costs buffers of its size, not 2 x 256 KiB. The buffers are allocated by the first read.
    r->chunk = st.st_size < READ_CHUNK ? (int)st.st_size + 1 : READ_CHUNK;
    if (r->chunk < 4096) r->chunk = 4096;
    return 0;
}

// Appends what one read of up to r->chunk bytes gave to the buffer; sets eof at the end.
static int fill(line_reader *r) {
    if (r->start > 0) {
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->end -= r->start;
        r->start = 0;
    }
    xmlParserInputBufferPtr in = r->in;
    int got = xmlParserInputBufferRead(in, r->chunk);
    if (got < 0) return err_set("%s: read error (truncated or corrupt compressed file?)", r->path);
    size_t avail = xmlBufUse(in->buffer);
    if (avail == 0) {
        r->eof = 1;
        return 0;
    }
    char *nb = vec_grow(r->buf, &r->cap, r->end + avail, 1);
    if (!nb) return err_set("%s: out of memory (line too long?)", r->path);
    r->buf = nb;
    memcpy(r->buf + r->end, xmlBufContent(in->buffer), avail);
    xmlBufShrink(in->buffer, avail);
    r->end += avail;
    return 0;
}

int line_reader_next(line_reader *r, const char **line, size_t *len) {
    size_t scanned = r->start;
    for (;;) {
        char *nl = r->end > scanned ? memchr(r->buf + scanned, '\n', r->end - scanned) : NULL;
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
