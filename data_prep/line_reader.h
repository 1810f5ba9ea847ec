// Streaming line reader for plain and gzip-compressed files. Decompression goes through
// libxml2's input layer (which wraps zlib), so the library needs no extra dependency.
#ifndef MEDTUNE_DATA_PREP_LINE_READER_H
#define MEDTUNE_DATA_PREP_LINE_READER_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    void *in;  // xmlParserInputBufferPtr
    char *buf;
    size_t cap, start, end;
    int eof;
    int chunk;  // bytes asked of libxml2 per read
    uint64_t line;   // number of the line last returned (1-based)
    uint64_t bytes;  // bytes returned so far, newlines included
    char path[4096];
} line_reader;

int line_reader_open(line_reader *r, const char *path);
// Returns 1 with the next line (without "\n" or "\r\n"; not NUL-terminated, valid until the
// next call), 0 at the end of the file, -1 on a read error.
int line_reader_next(line_reader *r, const char **line, size_t *len);
void line_reader_close(line_reader *r);

#endif
