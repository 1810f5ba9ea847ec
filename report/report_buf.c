#include "report/report_buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void report_buf_init(report_buf *b) { memset(b, 0, sizeof *b); }

void report_buf_free(report_buf *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

static int reserve(report_buf *b, size_t extra) {
    if (b->failed) return -1;
    if (b->len + extra + 1 <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra + 1) cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) {
        b->failed = 1;
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

static void append(report_buf *b, const char *s, size_t n) {
    if (reserve(b, n)) return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void report_buf_puts(report_buf *b, const char *s) { append(b, s, strlen(s)); }

void report_buf_printf(report_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void report_buf_escape(report_buf *b, const char *s) {
    const char *run = s;
    for (; *s; s++) {
        const char *ent = *s == '&'    ? "&amp;"
                          : *s == '<'  ? "&lt;"
                          : *s == '>'  ? "&gt;"
                          : *s == '"'  ? "&quot;"
                          : *s == '\'' ? "&#39;"
                                       : NULL;
        if (!ent) continue;
        append(b, run, (size_t)(s - run));
        report_buf_puts(b, ent);
        run = s + 1;
    }
    append(b, run, (size_t)(s - run));
}

int report_buf_failed(const report_buf *b) { return b->failed; }
