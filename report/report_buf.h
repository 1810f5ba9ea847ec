// A growable text buffer for building the report page. Allocation failure is sticky: later
// appends do nothing and report_buf_failed() says so, so builders check once at the end.
#ifndef MEDTUNE_REPORT_REPORT_BUF_H
#define MEDTUNE_REPORT_REPORT_BUF_H

#include <stddef.h>

typedef struct {
    char *data;  // NUL-terminated
    size_t len, cap;
    int failed;
} report_buf;

void report_buf_init(report_buf *b);
void report_buf_free(report_buf *b);
void report_buf_puts(report_buf *b, const char *s);
void report_buf_printf(report_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// Appends `s` with &, <, >, " and ' replaced by entities (safe in text and attribute values).
void report_buf_escape(report_buf *b, const char *s);
int report_buf_failed(const report_buf *b);

#endif
