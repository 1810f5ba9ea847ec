// Pre-tokenizers (HF `pre_tokenizers`): ByteLevel, Split, Metaspace, Digits, WhitespaceSplit.
// Each one splits every current piece into smaller pieces; the split rules (delimiter
// behaviours, empty pieces dropped) follow HF's NormalizedString::split.
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "tokenizer/tok_internal.h"

const char TOK_GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

// Pieces of one input piece as (offset, length, is_match), covering it from start to end.
typedef tok_spans match_list;

static int list_add(match_list *m, size_t s, size_t e, int is_match) {
    return tok_spans_push(m, s, e - s, is_match);
}

// Matches of a regex or literal over s[0..len) as HF's Pattern::find_matches lists them.
static int find_pattern(const tok_pretok *p, tok_scratch *sc, const char *s, size_t len,
                        match_list *m) {
    m->n = 0;
    size_t prev = 0, pos = 0;
    while (pos <= len) {
        size_t ms, me;
        if (p->re.code) {
            int rc = tok_regex_find(&p->re, sc, s, len, pos, &ms, &me);
            if (rc < 0) return -1;
            if (!rc) break;
        } else {
            const char *hit = p->literal_len ? memmem(s + pos, len - pos, p->literal, p->literal_len) : NULL;
            if (!hit) break;
            ms = (size_t)(hit - s);
            me = ms + p->literal_len;
        }
        if (prev != ms && list_add(m, prev, ms, 0)) return -1;
        if (list_add(m, ms, me, 1)) return -1;
        prev = me;
        if (me == ms) {  // empty match: step over one character
            if (ms >= len) break;
            int32_t cp;
            pos = ms + (size_t)utf8_next((const uint8_t *)s + ms, len - ms, &cp);
        } else
            pos = me;
    }
    if (prev != len && list_add(m, prev, len, 0)) return -1;
    return 0;
}

// Matches of a per-character predicate: every matching character is its own match.
static int find_chars(int (*pred)(int32_t), const char *s, size_t len, match_list *m) {
    m->n = 0;
    size_t prev = 0;
    for (size_t i = 0; i < len;) {
        int32_t cp;
        int k = utf8_next((const uint8_t *)s + i, len - i, &cp);
        if (pred(cp)) {
            if (prev != i && list_add(m, prev, i, 0)) return -1;
            if (list_add(m, i, i + (size_t)k, 1)) return -1;
            prev = i + (size_t)k;
        }
        i += (size_t)k;
    }
    if (prev != len && list_add(m, prev, len, 0)) return -1;
    return 0;
}

// Applies a delimiter behaviour to the match list and emits the non-empty pieces, whose
// text already sits in `out` at `base`.
static int emit_split(match_list *m, tok_split_behavior b, int invert, size_t base, int first,
                      tok_spans *outs) {
    if (invert)
        for (size_t i = 0; i < m->n; i++) m->v[i].first = !m->v[i].first;
    size_t n = 0;  // compacted in place: v[0..n) are the resulting pieces
    int prev_match = 0;
    if (b == TOK_SPLIT_MERGED_WITH_NEXT) {
        // Walk backwards: a match joins the piece that follows it.
        size_t w = m->n;
        for (size_t k = m->n; k-- > 0;) {
            tok_span x = m->v[k];
            if (x.first && !prev_match && w < m->n) {
                m->v[w].len += m->v[w].off - x.off;
                m->v[w].off = x.off;
            } else {
                m->v[--w] = x;
                m->v[w].first = 0;
            }
            prev_match = x.first;
        }
        memmove(m->v, m->v + w, (m->n - w) * sizeof *m->v);
        n = m->n - w;
    } else {
        for (size_t k = 0; k < m->n; k++) {
            tok_span x = m->v[k];
            int join = 0;
            switch (b) {
            case TOK_SPLIT_REMOVED:
                if (x.first) continue;
                break;
            case TOK_SPLIT_ISOLATED: break;
            case TOK_SPLIT_MERGED_WITH_PREVIOUS: join = x.first && !prev_match && n > 0; break;
            case TOK_SPLIT_CONTIGUOUS: join = x.first == prev_match && n > 0; break;
            case TOK_SPLIT_MERGED_WITH_NEXT: break;
            }
            prev_match = x.first;
            if (join) m->v[n - 1].len = x.off + x.len - m->v[n - 1].off;
            else m->v[n++] = x;
        }
    }
    for (size_t k = 0; k < n; k++) {
        if (!m->v[k].len) continue;
        if (tok_spans_push(outs, base + m->v[k].off, m->v[k].len, first && m->v[k].off == 0))
            return -1;
    }
    return 0;
}

static int byte_level(const tok_pretok *p, tok_scratch *sc, const char *s, size_t len, int first,
                      tok_buf *out, tok_spans *outs) {
    size_t base = out->len;
    if (p->add_prefix_space && (len == 0 || s[0] != ' ') && tok_buf_put(out, " ", 1)) return -1;
    if (tok_buf_put(out, s, len)) return -1;
    const char *t = out->p + base;
    size_t tl = out->len - base;
    if (!p->use_regex) return tl ? tok_spans_push(outs, base, tl, first) : 0;
    // Isolated split by the GPT-2 regex: every match is a piece, gaps are pieces too.
    size_t prev = 0, pos = 0;
    while (pos < tl) {
        size_t ms, me;
        int rc = tok_regex_find(&p->re, sc, t, tl, pos, &ms, &me);
        if (rc < 0) return -1;
        if (!rc) break;
        if (ms > prev && tok_spans_push(outs, base + prev, ms - prev, first && prev == 0)) return -1;
        if (me > ms && tok_spans_push(outs, base + ms, me - ms, first && ms == 0)) return -1;
        prev = me;
        pos = me > ms ? me : ms + 1;
    }
    if (prev < tl && tok_spans_push(outs, base + prev, tl - prev, first && prev == 0)) return -1;
    return 0;
}

static int metaspace(const tok_pretok *p, tok_scratch *sc, const char *s, size_t len, int first,
                     tok_buf *out, tok_spans *outs) {
    size_t base = out->len;
    const char *r = p->replacement;
    size_t rl = (size_t)p->replacement_len;
    int starts = len >= rl && !memcmp(s, r, rl);
    int has_space_start = len > 0 && s[0] == ' ';
    int prepend = 0;
    if (!starts && !has_space_start) {
        if (p->prepend_scheme == TOK_PREPEND_ALWAYS) prepend = 1;
        if (p->prepend_scheme == TOK_PREPEND_FIRST && first) prepend = 1;
    }
    if (prepend && tok_buf_put(out, r, rl)) return -1;
    for (size_t i = 0; i < len;) {
        const char *sp = memchr(s + i, ' ', len - i);
        size_t e = sp ? (size_t)(sp - s) : len;
        if (tok_buf_put(out, s + i, e - i)) return -1;
        if (sp && tok_buf_put(out, r, rl)) return -1;
        i = sp ? e + 1 : len;
    }
    size_t tl = out->len - base;
    if (!p->split) return tl ? tok_spans_push(outs, base, tl, first) : 0;
    match_list *m = &sc->spans[2];
    m->n = 0;
    const char *t = out->p + base;
    size_t prev = 0;
    for (size_t i = 0; i + rl <= tl;) {
        if (!memcmp(t + i, r, rl)) {
            if (prev != i && list_add(m, prev, i, 0)) return -1;
            if (list_add(m, i, i + rl, 1)) return -1;
            i += rl;
            prev = i;
        } else
            i++;
    }
    if (prev != tl && list_add(m, prev, tl, 0)) return -1;
    return emit_split(m, TOK_SPLIT_MERGED_WITH_NEXT, 0, base, first, outs);
}

static int pretok_one(const tok_pretok *p, tok_scratch *sc, const char *s, size_t len, int first,
                      tok_buf *out, tok_spans *outs) {
    match_list *m = &sc->spans[2];
    size_t base;
    switch (p->type) {
    case TOK_PRE_BYTE_LEVEL: return byte_level(p, sc, s, len, first, out, outs);
    case TOK_PRE_METASPACE: return metaspace(p, sc, s, len, first, out, outs);
    case TOK_PRE_SPLIT:
        base = out->len;
        if (tok_buf_put(out, s, len) || find_pattern(p, sc, out->p + base, len, m)) return -1;
        return emit_split(m, p->behavior, p->invert, base, first, outs);
    case TOK_PRE_DIGITS:
        base = out->len;
        if (tok_buf_put(out, s, len) || find_chars(uc_is_numeric, out->p + base, len, m)) return -1;
        return emit_split(m, p->individual_digits ? TOK_SPLIT_ISOLATED : TOK_SPLIT_CONTIGUOUS, 0,
                          base, first, outs);
    case TOK_PRE_WHITESPACE_SPLIT:
        base = out->len;
        if (tok_buf_put(out, s, len) || find_chars(uc_is_space, out->p + base, len, m)) return -1;
        return emit_split(m, TOK_SPLIT_REMOVED, 0, base, first, outs);
    }
    return err_set("tokenizer: unknown pre-tokenizer %d", (int)p->type);
}

int tok_pretokenize(const tok_pretok *p, tok_scratch *sc, const tok_buf *in,
                    const tok_spans *ins, tok_buf *out, tok_spans *outs) {
    out->len = 0;
    outs->n = 0;
    if (tok_buf_reserve(out, in->len + 16)) return -1;
    for (size_t i = 0; i < ins->n; i++) {
        const tok_span *x = &ins->v[i];
        if (pretok_one(p, sc, in->p + x->off, x->len, x->first, out, outs)) return -1;
    }
    return 0;
}

void tok_pretok_free(tok_pretok *p) {
    tok_regex_free(&p->re);
    free(p->literal);
    memset(p, 0, sizeof *p);
}
