// Decoding (HF `decoders`): ids -> token strings -> each decoder's decode_chain in order ->
// concatenation. ByteLevel maps the byte alphabet back to bytes and repairs invalid UTF-8
// with U+FFFD, as HF's String::from_utf8_lossy does.
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/strbuf.h"
#include "tokenizer/tok_internal.h"

typedef struct {
    tok_buf *s;  // token strings
    size_t n, cap;
} str_list;

static int list_push(str_list *l, const char *s, size_t len) {
    size_t old_cap = l->cap;
    tok_buf *v = vec_grow(l->s, &l->cap, l->n + 1, sizeof *v);
    if (!v) return err_set("tokenizer: out of memory");
    // Slots beyond n keep their buffers for reuse; new slots start empty.
    memset(v + old_cap, 0, (l->cap - old_cap) * sizeof *v);
    l->s = v;
    l->s[l->n].len = 0;
    return tok_buf_put(&l->s[l->n++], s, len);
}

static void list_free(str_list *l) {
    for (size_t i = 0; i < l->cap; i++) tok_buf_free(&l->s[i]);
    free(l->s);
}

static int replace_all(tok_buf *b, const char *pat, size_t pl, const char *rep, size_t rl) {
    if (!pl || !memmem(b->p, b->len, pat, pl)) return 0;
    tok_buf o = {0};
    size_t i = 0;
    while (i < b->len) {
        const char *hit = memmem(b->p + i, b->len - i, pat, pl);
        size_t e = hit ? (size_t)(hit - b->p) : b->len;
        if (tok_buf_put(&o, b->p + i, e - i) || (hit && tok_buf_put(&o, rep, rl))) {
            tok_buf_free(&o);
            return -1;
        }
        i = hit ? e + pl : b->len;
    }
    tok_buf_free(b);
    *b = o;
    return 0;
}

// Tokens spelled "<0xNN>" are raw bytes; a run of them becomes its UTF-8 text, or one U+FFFD
// per byte when the run is not valid UTF-8.
static int byte_fallback(str_list *l) {
    str_list o = {0};
    tok_buf run = {0}, fixed = {0};
    int rc = 0;
    for (size_t i = 0; i <= l->n && !rc; i++) {
        tok_buf *t = i < l->n ? &l->s[i] : NULL;
        int is_byte = 0;
        unsigned v = 0;
        if (t && t->len == 6 && !memcmp(t->p, "<0x", 3) && t->p[5] == '>') {
            char hex[3] = {t->p[3], t->p[4], 0}, *end;
            v = (unsigned)strtoul(hex, &end, 16);
            is_byte = *end == '\0' && hex[0] != '+' && hex[0] != '-' && hex[0] != ' ';
        }
        if (is_byte) {
            char c = (char)v;
            rc = tok_buf_put(&run, &c, 1);
            continue;
        }
        if (run.len) {
            size_t bad = utf8_sanitize(run.p, run.len, &fixed);
            if (bad == (size_t)-1) rc = -1;
            else if (!bad) rc = list_push(&o, fixed.p, fixed.len);
            else
                for (size_t k = 0; k < run.len && !rc; k++) rc = list_push(&o, "\xEF\xBF\xBD", 3);
            run.len = 0;
        }
        if (t && !rc) rc = list_push(&o, t->p, t->len);
    }
    tok_buf_free(&run);
    tok_buf_free(&fixed);
    if (rc) {
        list_free(&o);
        return -1;
    }
    list_free(l);
    *l = o;
    return 0;
}

static int fuse(str_list *l) {
    if (l->n <= 1) return 0;
    for (size_t i = 1; i < l->n; i++)
        if (tok_buf_put(&l->s[0], l->s[i].p, l->s[i].len)) return -1;
    l->n = 1;
    return 0;
}

static int byte_level(str_list *l) {
    tok_buf raw = {0}, out = {0};
    int rc = 0;
    for (size_t i = 0; i < l->n && !rc; i++) {
        tok_buf *t = &l->s[i];
        size_t mark = raw.len;
        for (size_t j = 0; j < t->len && !rc;) {
            int32_t cp;
            j += (size_t)utf8_next((const uint8_t *)t->p + j, t->len - j, &cp);
            int b = tok_cp_to_byte(cp);
            if (b < 0) {  // not in the alphabet: HF keeps the token's own UTF-8 bytes
                raw.len = mark;
                rc = tok_buf_put(&raw, t->p, t->len);
                break;
            }
            char c = (char)b;
            rc = tok_buf_put(&raw, &c, 1);
        }
    }
    if (!rc && utf8_sanitize(raw.p ? raw.p : "", raw.len, &out) == (size_t)-1) rc = -1;
    l->n = 0;
    if (!rc) rc = list_push(l, out.p ? out.p : "", out.len);
    tok_buf_free(&raw);
    tok_buf_free(&out);
    return rc;
}

static int strip(const tok_decoder *d, str_list *l) {
    for (size_t i = 0; i < l->n; i++) {
        tok_buf *t = &l->s[i];
        size_t b = 0, e = t->len, cl = d->content_len;
        for (int k = 0; k < d->start && e - b >= cl && cl && !memcmp(t->p + b, d->content, cl); k++) b += cl;
        for (int k = 0; k < d->stop && e - b >= cl && cl && !memcmp(t->p + e - cl, d->content, cl); k++) e -= cl;
        memmove(t->p, t->p + b, e - b);
        t->len = e - b;
    }
    return 0;
}

static int metaspace(const tok_decoder *d, str_list *l) {
    for (size_t i = 0; i < l->n; i++) {
        tok_buf *t = &l->s[i];
        if (replace_all(t, d->replacement, (size_t)d->replacement_len, " ", 1)) return -1;
        if (i == 0 && d->prepend && t->len && t->p[0] == ' ') {
            memmove(t->p, t->p + 1, t->len - 1);
            t->len--;
        }
    }
    return 0;
}

int tokenizer_decode(const tokenizer *t, const int32_t *ids, size_t n, int skip_special,
                     char **out, size_t *out_len) {
    str_list l = {0};
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->n_ids || !t->tok_str[id]) {
            rc = err_set("%s: token id %d is not in the vocabulary (%d ids)", t->source, id, t->n_ids);
            break;
        }
        if (skip_special && t->tok_special[id]) continue;
        rc = list_push(&l, t->tok_str[id], t->tok_len[id]);
    }
    for (size_t k = 0; k < t->n_dec && !rc; k++) {
        const tok_decoder *d = &t->dec[k];
        switch (d->type) {
        case TOK_DEC_BYTE_LEVEL: rc = byte_level(&l); break;
        case TOK_DEC_METASPACE: rc = metaspace(d, &l); break;
        case TOK_DEC_REPLACE:
            for (size_t i = 0; i < l.n && !rc; i++)
                rc = replace_all(&l.s[i], d->pattern, d->pattern_len, d->content, d->content_len);
            break;
        case TOK_DEC_BYTE_FALLBACK: rc = byte_fallback(&l); break;
        case TOK_DEC_FUSE: rc = fuse(&l); break;
        case TOK_DEC_STRIP: rc = strip(d, &l); break;
        }
    }
    tok_buf res = {0};
    // Without a decoder HF joins the tokens with spaces.
    for (size_t i = 0; i < l.n && !rc; i++)
        rc = (!t->has_decoder && i && tok_buf_put(&res, " ", 1)) || tok_buf_put(&res, l.s[i].p, l.s[i].len);
    if (!rc) rc = tok_buf_put(&res, "", 1);
    list_free(&l);
    if (rc) {
        tok_buf_free(&res);
        return -1;
    }
    *out = res.p;
    if (out_len) *out_len = res.len - 1;
    return 0;
}

void tok_decoder_free(tok_decoder *d) {
    free(d->pattern);
    free(d->content);
    memset(d, 0, sizeof *d);
}
