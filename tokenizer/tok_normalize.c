// Normalizers (HF `normalizers`): Unicode forms via utf8proc, Lowercase, Strip, StripAccents,
// Replace, Prepend, applied in order. Inputs are valid UTF-8 (encode repairs them first).
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "common/error.h"
#include "tokenizer/tok_internal.h"

static int unicode_form(utf8proc_option_t opt, const char *s, size_t len, tok_buf *out) {
    utf8proc_uint8_t *res = NULL;
    utf8proc_ssize_t n = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)len, &res,
                                      opt | UTF8PROC_STABLE);
    if (n < 0) return err_set("tokenizer: unicode normalization failed: %s", utf8proc_errmsg(n));
    int rc = tok_buf_put(out, res, (size_t)n);
    free(res);
    return rc;
}

static int lowercase(const char *s, size_t len, tok_buf *out) {
    const uint8_t *u = (const uint8_t *)s;
    for (size_t i = 0; i < len;) {
        int32_t cp;
        i += (size_t)utf8_next(u + i, len - i, &cp);
        char enc[8];
        int k;
        // U+0130 is the one code point whose full lowercase mapping (Rust's to_lowercase,
        // which HF uses) is two code points; utf8proc only has the simple mapping.
        if (cp == 0x130) {
            k = utf8_encode('i', enc);
            k += utf8_encode(0x307, enc + k);
        } else
            k = utf8_encode(utf8proc_tolower(cp), enc);
        if (tok_buf_put(out, enc, (size_t)k)) return -1;
    }
    return 0;
}

static int strip(const tok_normalizer *n, const char *s, size_t len, tok_buf *out) {
    const uint8_t *u = (const uint8_t *)s;
    size_t b = 0, e = len;
    while (n->left && b < e) {
        int32_t cp;
        int k = utf8_next(u + b, e - b, &cp);
        if (!uc_is_space(cp)) break;
        b += (size_t)k;
    }
    while (n->right && e > b) {
        size_t p = e - 1;
        while (p > b && (u[p] & 0xC0) == 0x80) p--;
        int32_t cp;
        utf8_next(u + p, e - p, &cp);
        if (!uc_is_space(cp)) break;
        e = p;
    }
    return tok_buf_put(out, s + b, e - b);
}

static int strip_accents(const char *s, size_t len, tok_buf *out) {
    const uint8_t *u = (const uint8_t *)s;
    for (size_t i = 0; i < len;) {
        int32_t cp;
        int k = utf8_next(u + i, len - i, &cp);
        if (utf8proc_category(cp) != UTF8PROC_CATEGORY_MN && tok_buf_put(out, s + i, (size_t)k))
            return -1;
        i += (size_t)k;
    }
    return 0;
}

static int replace(const tok_normalizer *n, tok_scratch *sc, const char *s, size_t len,
                   tok_buf *out) {
    size_t pos = 0;
    while (pos < len) {
        size_t ms, me;
        if (n->re.code) {
            int rc = tok_regex_find(&n->re, sc, s, len, pos, &ms, &me);
            if (rc < 0) return -1;
            if (!rc) break;
        } else {
            const char *hit = n->pattern_len ? memmem(s + pos, len - pos, n->pattern, n->pattern_len) : NULL;
            if (!hit) break;
            ms = (size_t)(hit - s);
            me = ms + n->pattern_len;
        }
        if (tok_buf_put(out, s + pos, ms - pos) || tok_buf_put(out, n->content, n->content_len))
            return -1;
        if (me == ms) {  // empty match: keep one character and move on
            int32_t cp;
            int k = ms < len ? utf8_next((const uint8_t *)s + ms, len - ms, &cp) : 1;
            if (ms < len && tok_buf_put(out, s + ms, (size_t)k)) return -1;
            me = ms + (size_t)k;
        }
        pos = me;
    }
    return pos < len ? tok_buf_put(out, s + pos, len - pos) : 0;
}

static int normalize_one(const tok_normalizer *n, tok_scratch *sc, const char *s, size_t len,
                         tok_buf *out) {
    out->len = 0;
    switch (n->type) {
    case TOK_NORM_NFC: return unicode_form(UTF8PROC_COMPOSE, s, len, out);
    case TOK_NORM_NFD: return unicode_form(UTF8PROC_DECOMPOSE, s, len, out);
    case TOK_NORM_NFKC: return unicode_form(UTF8PROC_COMPOSE | UTF8PROC_COMPAT, s, len, out);
    case TOK_NORM_NFKD: return unicode_form(UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT, s, len, out);
    case TOK_NORM_LOWERCASE: return lowercase(s, len, out);
    case TOK_NORM_STRIP: return strip(n, s, len, out);
    case TOK_NORM_STRIP_ACCENTS: return strip_accents(s, len, out);
    case TOK_NORM_REPLACE: return replace(n, sc, s, len, out);
    case TOK_NORM_PREPEND:
        if (len && tok_buf_put(out, n->content, n->content_len)) return -1;
        return tok_buf_put(out, s, len);
    }
    return err_set("tokenizer: unknown normalizer %d", (int)n->type);
}

int tok_normalize(const tok_normalizer *n, size_t count, tok_scratch *sc, const char *s,
                  size_t len, tok_buf *out, tok_buf *tmp) {
    out->len = 0;
    if (!len) return 0;  // every normalizer maps "" to ""
    if (tok_buf_put(out, s, len)) return -1;
    for (size_t i = 0; i < count; i++) {
        if (normalize_one(&n[i], sc, out->p, out->len, tmp)) return -1;
        tok_buf swap = *out;
        *out = *tmp;
        *tmp = swap;
    }
    return 0;
}

void tok_normalizer_free(tok_normalizer *n) {
    free(n->pattern);
    free(n->content);
    tok_regex_free(&n->re);
    memset(n, 0, sizeof *n);
}
