// Growable memory: a NUL-terminated text buffer (strbuf) and capacity growth for typed arrays
// (vec_grow). One allocation policy for the whole library: capacities double, sizes are
// checked for overflow, and a failed allocation is reported with err_set, never ignored.
#ifndef MEDTUNE_COMMON_STRBUF_H
#define MEDTUNE_COMMON_STRBUF_H

#include <stddef.h>

// Text built piece by piece. A failed allocation is sticky: later appends do nothing and
// return -1, so a builder may append freely and check once (strbuf_failed) at the end.
typedef struct {
    char *data;  // NUL-terminated once anything was appended; NULL before
    size_t len, cap;
    int failed;
} strbuf;

void strbuf_init(strbuf *b);
void strbuf_free(strbuf *b);
// Empties the text but keeps the memory, for a buffer refilled in a loop. A failure stays.
void strbuf_clear(strbuf *b);
// Makes room for `extra` more bytes (plus the NUL).
int strbuf_reserve(strbuf *b, size_t extra);
int strbuf_append(strbuf *b, const void *data, size_t n);
int strbuf_puts(strbuf *b, const char *s);
int strbuf_putc(strbuf *b, char c);
int strbuf_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int strbuf_failed(const strbuf *b);
// Hands the text over to the caller (an empty string when nothing was appended; NULL after a
// failed allocation) and leaves the buffer empty.
char *strbuf_take(strbuf *b);

// Returns `items` (elements of `elem` bytes, capacity *cap) reallocated to hold at least
// `need` elements, updating *cap; the capacity at least doubles so appends stay amortised
// O(1). Returns NULL with err_set (and leaves `items` allocated and *cap unchanged) when the
// size overflows or memory runs out.
//     int32_t *p = vec_grow(v->data, &v->cap, v->n + 1, sizeof *p);
//     if (!p) return -1;
//     v->data = p;
void *vec_grow(void *items, size_t *cap, size_t need, size_t elem);

#endif
