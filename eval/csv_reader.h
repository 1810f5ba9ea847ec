// CSV records parsed exactly as Python's csv.reader with the default "excel" dialect reads a
// file opened with newline="": comma-separated, '"' quoting with "" for a quote, line breaks
// inside quoted fields kept, text after a closing quote appended to the field (strict=False),
// \n, \r and \r\n all ending a record, and a blank line giving a record of no fields.
#ifndef MEDTUNE_EVAL_CSV_READER_H
#define MEDTUNE_EVAL_CSV_READER_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *data;
    size_t len, pos;
    uint64_t line;        // 1-based line where the current record starts
    uint64_t next_line;
    char **fields;        // NUL-terminated fields of the current record
    size_t n_fields;
    int has_nul;          // a field of the current record holds a NUL byte
    size_t *offsets, cap_fields;  // cap_fields: capacity of offsets and of fields
    char *buf;
    size_t buf_len, buf_cap;
} csv_reader;

void csv_reader_init(csv_reader *r, const char *data, size_t len);
// 1 with the next record in r->fields / r->n_fields, 0 at the end, -1 when out of memory.
int csv_reader_next(csv_reader *r);
void csv_reader_free(csv_reader *r);

#endif
