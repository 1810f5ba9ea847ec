#include "data_prep/clean.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

static int all_ascii(const char *s, size_t n) {
    size_t i = 0;
    uint64_t acc = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        acc |= w;
    }
    for (; i < n; i++) acc |= (unsigned char)s[i];
    return (acc & 0x8080808080808080ull) == 0;
}

// 1 when s[0..n) is valid UTF-8 (no overlongs, surrogates or code points above U+10FFFF).
static int utf8_valid(const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        if (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (!(w & 0x8080808080808080ull)) {
                i += 8;
                continue;
            }
        }
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint32_t cp, min;
        if ((c & 0xE0) == 0xC0) need = 1, cp = c & 0x1F, min = 0x80;
        else if ((c & 0xF0) == 0xE0) need = 2, cp = c & 0x0F, min = 0x800;
        else if ((c & 0xF8) == 0xF0) need = 3, cp = c & 0x07, min = 0x10000;
        else return 0;
        if (i + need >= n) return 0;
        for (size_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        i += need + 1;
    }
    return 1;
}

size_t utf8_length(const char *s, size_t n) {
    size_t count = 0;
    for (size_t i = 0; i < n; i++) count += ((unsigned char)s[i] & 0xC0) != 0x80;
    return count;
}

static uint32_t decode(const unsigned char *s, size_t *i) {
    unsigned c = s[*i];
    if (c < 0x80) return (*i)++, c;
    size_t need = (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : 3;
    uint32_t cp = c & (need == 1 ? 0x1F : need == 2 ? 0x0F : 0x07);
    for (size_t k = 1; k <= need; k++) cp = (cp << 6) | (s[*i + k] & 0x3F);
    *i += need + 1;
    return cp;
}

typedef enum { CH_KEEP, CH_SPACE, CH_NEWLINE, CH_DROP } char_class;

static char_class classify(uint32_t cp) {
    if (cp == ' ' || cp == '\t') return CH_SPACE;
    if (cp == '\n' || cp == '\r' || cp == '\f' || cp == '\v') return CH_NEWLINE;
    if (cp < 0x20 || cp == 0x7F) return CH_DROP;
    if (cp < 0x80) return CH_KEEP;
    if (cp == 0x85 || cp == 0x2028 || cp == 0x2029) return CH_NEWLINE;
    if (cp < 0xA0) return CH_DROP;
    if (cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x202F ||
        cp == 0x205F || cp == 0x3000)
        return CH_SPACE;
    if (cp == 0x200B || cp == 0x2060 || cp == 0xFEFF) return CH_DROP;
    return CH_KEEP;
}

int clean_text(const char *s, size_t n, strbuf *out) {
    if (!utf8_valid(s, n)) return 1;
    utf8proc_uint8_t *nfc = NULL;
    const unsigned char *src = (const unsigned char *)s;
    size_t len = n;
    if (!all_ascii(s, n)) {
        utf8proc_ssize_t m = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &nfc,
                                          UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        if (m < 0) return m == UTF8PROC_ERROR_NOMEM ? -1 : 1;
        src = nfc;
        len = (size_t)m;
    }
    strbuf_clear(out);
    if (strbuf_reserve(out, len)) {
        free(nfc);
        return -1;
    }
    char *o = out->data;
    size_t w = 0, i = 0;
    int pending_space = 0, pending_newlines = 0;
    while (i < len) {
        size_t at = i;
        uint32_t cp = decode(src, &i);
        char_class k = classify(cp);
        if (k == CH_SPACE) {
            pending_space = 1;
        } else if (k == CH_NEWLINE) {
            if (cp == '\r' && i < len && src[i] == '\n') i++;
            pending_newlines++;
            pending_space = 0;
        } else if (k == CH_KEEP) {
            if (w > 0) {
                if (pending_newlines) {
                    o[w++] = '\n';
                    if (pending_newlines > 1) o[w++] = '\n';
                } else if (pending_space) {
                    o[w++] = ' ';
                }
            }
            pending_space = pending_newlines = 0;
            // Output never outgrows the input: each separator emitted replaces at least as
            // many consumed bytes.
            memcpy(o + w, src + at, i - at);
            w += i - at;
        }
    }
    o[w] = '\0';
    out->len = w;
    free(nfc);
    return 0;
}
