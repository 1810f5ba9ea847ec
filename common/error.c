#include "common/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char err_buf[2048];

// Messages quote names and values from input files (JSON keys, XML text, tensor names). The
// CLI prints a message as one line, so control characters from the input (a newline in a
// JSON key, a terminal escape) are shown as '?'; tabs stay.
static void err_one_line(char *s) {
    for (; *s; s++)
        if (((unsigned char)*s < 0x20 && *s != '\t') || *s == 0x7f) *s = '?';
}

int err_set(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_buf, sizeof err_buf, fmt, ap);
    va_end(ap);
    err_one_line(err_buf);
    return -1;
}

int err_prefix(const char *fmt, ...) {
    char prefix[1024];
    char old[sizeof err_buf];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err_buf, sizeof old);
    size_t k = strlen(prefix);
    if (k + 2 >= sizeof err_buf) k = sizeof err_buf - 3;
    memcpy(err_buf, prefix, k);
    memcpy(err_buf + k, ": ", 2);
    size_t rest = sizeof err_buf - k - 3;
    size_t n = strnlen(old, rest);
    memcpy(err_buf + k + 2, old, n);
    err_buf[k + 2 + n] = '\0';
    err_one_line(err_buf);
    return -1;
}

const char *err_msg(void) { return err_buf[0] ? err_buf : "unknown error"; }

void err_clear(void) { err_buf[0] = '\0'; }

void *xmalloc_or_err(size_t n, const char *what) {
    void *p = malloc(n ? n : 1);
    if (!p) err_set("%s: out of memory allocating %zu bytes", what, n);
    return p;
}

void *xcalloc_or_err(size_t count, size_t size, const char *what) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) err_set("%s: out of memory allocating %zu x %zu bytes", what, count, size);
    return p;
}
