#include "eval/csv_reader.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/strbuf.h"

enum { START_FIELD, IN_FIELD, IN_QUOTED, QUOTE_IN_QUOTED };

void csv_reader_init(csv_reader *r, const char *data, size_t len) {
    memset(r, 0, sizeof *r);
    r->data = data;
    r->len = len;
    r->next_line = 1;
}

void csv_reader_free(csv_reader *r) {
    free(r->fields);
    free(r->offsets);
    free(r->buf);
    memset(r, 0, sizeof *r);
}

static int add_byte(csv_reader *r, char c) {
    char *p = vec_grow(r->buf, &r->buf_cap, r->buf_len + 1, 1);
    if (!p) return err_set("csv: out of memory");
    r->buf = p;
    r->buf[r->buf_len++] = c;
    return 0;
}

static int add_char(csv_reader *r, char c) {
    if (c == '\0') r->has_nul = 1;
    return add_byte(r, c);
}

// Terminates the field being built and starts the next one at the current end of buf.
static int end_field(csv_reader *r, size_t *field_start) {
    if (add_byte(r, '\0')) return -1;
    // offsets and fields grow together: from the same capacity vec_grow gives both the same
    // new one. fields are only set once the record is complete, as buf may still move.
    size_t need = r->n_fields + 1, cap_offsets = r->cap_fields, cap_ptrs = r->cap_fields;
    size_t *o = vec_grow(r->offsets, &cap_offsets, need, sizeof *o);
    if (o) r->offsets = o;
    char **f = vec_grow(r->fields, &cap_ptrs, need, sizeof *f);
    if (f) r->fields = f;
    if (!o || !f) return err_set("csv: out of memory");
    r->cap_fields = cap_offsets;
    r->offsets[r->n_fields++] = *field_start;
    *field_start = r->buf_len;
    return 0;
}

// Consumes the line break at pos (\n, \r or \r\n) and counts it.
static void eat_newline(csv_reader *r) {
    if (r->data[r->pos] == '\r' && r->pos + 1 < r->len && r->data[r->pos + 1] == '\n') r->pos++;
    r->pos++;
    r->next_line++;
}

int csv_reader_next(csv_reader *r) {
    if (r->pos >= r->len) return 0;
    r->line = r->next_line;
    r->n_fields = 0;
    r->buf_len = 0;
    r->has_nul = 0;
    size_t field_start = 0;
    const char *d = r->data;
    char c = d[r->pos];
    if (c == '\n' || c == '\r') {  // a blank line: a record without fields, as Python's []
        eat_newline(r);
        return 1;
    }
    int state = START_FIELD, done = 0;
    while (!done && r->pos < r->len) {
        c = d[r->pos];
        int newline = c == '\n' || c == '\r';
        switch (state) {
        case START_FIELD:
        case IN_FIELD:
            if (newline) {
                if (end_field(r, &field_start)) return -1;
                eat_newline(r);
                done = 1;
                continue;
            }
            if (c == ',') {
                if (end_field(r, &field_start)) return -1;
                state = START_FIELD;
            } else if (c == '"' && state == START_FIELD) {
                state = IN_QUOTED;
            } else {
                if (add_char(r, c)) return -1;
                state = IN_FIELD;
            }
            break;
        case IN_QUOTED:
            if (c == '"') {
                state = QUOTE_IN_QUOTED;
            } else {
                if (c == '\n' || (c == '\r' && !(r->pos + 1 < r->len && d[r->pos + 1] == '\n')))
                    r->next_line++;
                if (add_char(r, c)) return -1;
            }
            break;
        case QUOTE_IN_QUOTED:
            if (c == '"') {
                if (add_char(r, c)) return -1;
                state = IN_QUOTED;
            } else if (c == ',') {
                if (end_field(r, &field_start)) return -1;
                state = START_FIELD;
            } else if (newline) {
                if (end_field(r, &field_start)) return -1;
                eat_newline(r);
                done = 1;
                continue;
            } else {
                if (add_char(r, c)) return -1;
                state = IN_FIELD;
            }
            break;
        }
        r->pos++;
    }
    // End of data without a final line break (or inside an unclosed quote, which Python's
    // non-strict reader also closes at the end of the file).
    if (!done && end_field(r, &field_start)) return -1;
    for (size_t i = 0; i < r->n_fields; i++) r->fields[i] = r->buf + r->offsets[i];
    return 1;
}
