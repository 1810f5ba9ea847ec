#include "common/strbuf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

void strbuf_init(strbuf *b) { memset(b, 0, sizeof *b); }

void strbuf_free(strbuf *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

void strbuf_clear(strbuf *b) {
    b->len = 0;
    if (b->data) b->data[0] = '\0';
}

int strbuf_reserve(strbuf *b, size_t extra) {
    if (b->failed) return -1;
    if (extra > SIZE_MAX - b->len - 1) {
        b->failed = 1;
        return err_set("text buffer: size overflow");
    }
    if (b->len + extra + 1 <= b->cap) return 0;
    size_t cap = b->cap;
    char *p = vec_grow(b->data, &cap, b->len + extra + 1 < 256 ? 256 : b->len + extra + 1, 1);
    if (!p) {
        b->failed = 1;
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

int strbuf_append(strbuf *b, const void *data, size_t n) {
    if (strbuf_reserve(b, n)) return -1;
    if (n) memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int strbuf_puts(strbuf *b, const char *s) { return strbuf_append(b, s, strlen(s)); }

int strbuf_putc(strbuf *b, char c) { return strbuf_append(b, &c, 1); }

int strbuf_printf(strbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1;
        return err_set("text buffer: bad format");
    }
    if (strbuf_reserve(b, (size_t)n)) return -1;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

int strbuf_failed(const strbuf *b) { return b->failed; }

char *strbuf_take(strbuf *b) {
    char *s = NULL;
    if (!b->failed) s = b->data ? b->data : calloc(1, 1);
    else free(b->data);
    if (!s && !b->failed) err_set("text buffer: out of memory");
    memset(b, 0, sizeof *b);
    return s;
}

void *vec_grow(void *items, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap && items) return items;
    size_t n = *cap ? *cap : 8;
    while (n < need) {
        if (n > SIZE_MAX / 2) {
            n = need;
            break;
        }
        n *= 2;
    }
    if (elem && n > SIZE_MAX / elem) {
        err_set("out of memory (%zu elements of %zu bytes)", need, elem);
        return NULL;
    }
    void *p = realloc(items, n * elem);
    if (!p) {
        err_set("out of memory (%zu bytes)", n * elem);
        return NULL;
    }
    *cap = n;
    return p;
}
