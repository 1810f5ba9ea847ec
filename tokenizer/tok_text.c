// Text helpers for the tokenizer: growable buffers, UTF-8 decoding and repair, Unicode
// classes from utf8proc, and PCRE2 regexes translated from HF's Oniguruma patterns.
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "common/error.h"
#include "common/strbuf.h"
#include "tokenizer/tok_internal.h"

int tok_buf_reserve(tok_buf *b, size_t extra) {
    char *p = vec_grow(b->p, &b->cap, b->len + extra, 1);
    if (!p) return err_set("tokenizer: out of memory (%zu bytes)", b->len + extra);
    b->p = p;
    return 0;
}

int tok_buf_put(tok_buf *b, const void *s, size_t n) {
    if (tok_buf_reserve(b, n)) return -1;
    if (n) memcpy(b->p + b->len, s, n);
    b->len += n;
    return 0;
}

void tok_buf_free(tok_buf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

int tok_spans_push(tok_spans *s, size_t off, size_t len, int first) {
    tok_span *v = vec_grow(s->v, &s->cap, s->n + 1, sizeof *v);
    if (!v) return err_set("tokenizer: out of memory (%zu spans)", s->n + 1);
    s->v = v;
    s->v[s->n++] = (tok_span){off, len, first};
    return 0;
}

void tok_spans_free(tok_spans *s) {
    free(s->v);
    memset(s, 0, sizeof *s);
}

int utf8_next(const uint8_t *s, size_t n, int32_t *cp) {
    uint8_t c = s[0];
    if (c < 0x80 || n < 2) {
        *cp = c;
        return 1;
    }
    if (c < 0xE0) {
        *cp = (int32_t)(c & 0x1F) << 6 | (s[1] & 0x3F);
        return 2;
    }
    if (c < 0xF0 || n < 4) {
        *cp = (int32_t)(c & 0x0F) << 12 | (int32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
        return 3;
    }
    *cp = (int32_t)(c & 0x07) << 18 | (int32_t)(s[1] & 0x3F) << 12 | (int32_t)(s[2] & 0x3F) << 6 |
          (s[3] & 0x3F);
    return 4;
}

int utf8_encode(int32_t cp, char out[4]) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

// Length of the well-formed sequence at s (Unicode Table 3-7), or -(length of the maximal
// ill-formed prefix) so the caller replaces exactly that many bytes with one U+FFFD.
static int utf8_check(const uint8_t *s, size_t n) {
    uint8_t c = s[0];
    if (c < 0x80) return 1;
    int need;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else
        return -1;
    for (int i = 1; i <= need; i++) {
        if ((size_t)i >= n) return -i;
        uint8_t x = s[i];
        if (i == 1 ? (x < lo || x > hi) : (x < 0x80 || x > 0xBF)) return -i;
    }
    return need + 1;
}

size_t utf8_sanitize(const char *s, size_t len, tok_buf *out) {
    static const char FFFD[3] = {(char)0xEF, (char)0xBF, (char)0xBD};
    const uint8_t *u = (const uint8_t *)s;
    size_t bad = 0, i = 0, run = 0;
    out->len = 0;
    if (tok_buf_reserve(out, len + 1)) return (size_t)-1;
    while (i < len) {
        int k = utf8_check(u + i, len - i);
        if (k > 0) {
            i += (size_t)k;
            continue;
        }
        if (tok_buf_put(out, s + run, i - run) || tok_buf_put(out, FFFD, 3)) return (size_t)-1;
        i += (size_t)-k;
        run = i;
        bad++;
    }
    if (tok_buf_put(out, s + run, len - run)) return (size_t)-1;
    return bad;
}

int uc_is_space(int32_t cp) {
    if ((cp >= 9 && cp <= 13) || cp == 0x85) return 1;
    if (cp < 0x80) return cp == ' ';
    utf8proc_category_t c = utf8proc_category(cp);
    return c == UTF8PROC_CATEGORY_ZS || c == UTF8PROC_CATEGORY_ZL || c == UTF8PROC_CATEGORY_ZP;
}

int uc_is_numeric(int32_t cp) {
    if (cp < 0x80) return cp >= '0' && cp <= '9';
    utf8proc_category_t c = utf8proc_category(cp);
    return c == UTF8PROC_CATEGORY_ND || c == UTF8PROC_CATEGORY_NL || c == UTF8PROC_CATEGORY_NO;
}

int uc_is_alnum(int32_t cp) {
    if (cp < 0x80)
        return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
    utf8proc_category_t c = utf8proc_category(cp);
    return (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO) || uc_is_numeric(cp);
}

// ---- regexes ------------------------------------------------------------------------------

// Oniguruma (HF's engine) gives \s, \w their full Unicode meaning; PCRE2's UCP classes differ
// at the edges (U+180E is \s in PCRE2, combining marks are \w only in onig), so those
// escapes are spelled out as the general categories onig uses.
#define ONIG_SPACE "\\p{Z}\\t-\\r\\x{85}"
#define ONIG_WORD "\\p{L}\\p{M}\\p{N}\\p{Pc}"

int tok_regex_compile(tok_regex *r, const char *pattern, size_t len, const char *what) {
    memset(r, 0, sizeof *r);
    tok_buf b = {0};
    int in_class = 0;
    for (size_t i = 0; i < len; i++) {
        char c = pattern[i];
        int rc = 0;
        if (c == '\\' && i + 1 < len) {
            char e = pattern[++i];
            const char *cls = e == 's' || e == 'S' ? ONIG_SPACE : e == 'w' || e == 'W' ? ONIG_WORD : NULL;
            if (cls && in_class && (e == 'S' || e == 'W')) {
                tok_buf_free(&b);
                return err_set("%s: negated class \\%c inside [...] is not supported", what, e);
            }
            if (cls && in_class) rc = tok_buf_put(&b, cls, strlen(cls));
            else if (cls) {
                rc = tok_buf_put(&b, e == 's' || e == 'w' ? "[" : "[^", e == 's' || e == 'w' ? 1 : 2);
                rc = rc || tok_buf_put(&b, cls, strlen(cls)) || tok_buf_put(&b, "]", 1);
            } else {
                char esc[2] = {'\\', e};
                rc = tok_buf_put(&b, esc, 2);
            }
        } else {
            if (c == '[' && !in_class) {
                in_class = 1;
                rc = tok_buf_put(&b, &c, 1);
                // A ']' or '^]' right after '[' is a literal member, not the end.
                if (i + 1 < len && pattern[i + 1] == '^') rc = rc || tok_buf_put(&b, &pattern[++i], 1);
                if (i + 1 < len && pattern[i + 1] == ']') rc = rc || tok_buf_put(&b, &pattern[++i], 1);
                if (rc) break;
                continue;
            }
            if (c == ']' && in_class) in_class = 0;
            rc = tok_buf_put(&b, &c, 1);
        }
        if (rc) {
            tok_buf_free(&b);
            return -1;
        }
    }
    int errcode;
    PCRE2_SIZE erroff;
    r->code = pcre2_compile((PCRE2_SPTR)(b.p ? b.p : ""), b.len, PCRE2_UTF | PCRE2_UCP, &errcode,
                            &erroff, NULL);
    tok_buf_free(&b);
    if (!r->code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(errcode, msg, sizeof msg);
        return err_set("%s: cannot compile regex '%.*s': %s", what, (int)len, pattern, (char *)msg);
    }
    pcre2_jit_compile(r->code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if absent
    r->source = malloc(len + 1);
    if (!r->source) {
        tok_regex_free(r);
        return err_set("%s: out of memory", what);
    }
    memcpy(r->source, pattern, len);
    r->source[len] = '\0';
    return 0;
}

void tok_regex_free(tok_regex *r) {
    if (r->code) pcre2_code_free(r->code);
    free(r->source);
    memset(r, 0, sizeof *r);
}

int tok_regex_find(const tok_regex *r, tok_scratch *sc, const char *s, size_t len, size_t start,
                   size_t *ms, size_t *me) {
    int rc = pcre2_match(r->code, (PCRE2_SPTR)s, len, start, PCRE2_NO_UTF_CHECK, sc->md, sc->mctx);
    if (rc == PCRE2_ERROR_NOMATCH) return 0;
    if (rc < 0) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(rc, msg, sizeof msg);
        return err_set("tokenizer: regex '%s' failed: %s", r->source, (char *)msg);
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(sc->md);
    *ms = ov[0];
    *me = ov[1];
    return 1;
}
