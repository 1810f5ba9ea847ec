// The public tokenizer API: loading dispatch, the encode pipeline (added tokens, normalizer,
// pre-tokenizers, BPE, post-processor), added-token matching and the fingerprint.
#include "tokenizer/tokenizer.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "common/error.h"
#include "common/fileio.h"
#include "common/str.h"
#include "common/strbuf.h"
#include "formats/gguf.h"
#include "tokenizer/tok_internal.h"

int id_vec_push(id_vec *v, int32_t id) {
    int32_t *d = vec_grow(v->data, &v->cap, v->len + 1, sizeof *d);
    if (!d) return err_set("tokenizer: out of memory (%zu ids)", v->len + 1);
    v->data = d;
    v->data[v->len++] = id;
    return 0;
}

void id_vec_free(id_vec *v) {
    free(v->data);
    memset(v, 0, sizeof *v);
}

// ---- loading ------------------------------------------------------------------------------

static tokenizer *tok_alloc(const char *source) {
    tokenizer *t = xcalloc_or_err(1, sizeof *t, source);
    if (!t) return NULL;
    t->source = strdup(source);
    t->bos_id = t->eos_id = -1;
    pthread_mutex_init(&t->pool_lock, NULL);
    if (!t->source || tok_bpe_init(&t->bpe, 0, 0)) {
        tokenizer_free(t);
        return NULL;
    }
    return t;
}

int tok_set_ids(tokenizer *t, int32_t n_ids) {
    if (n_ids <= t->n_ids) return 0;
    // The id-indexed arrays grow together: from the same capacity vec_grow gives each the
    // same new one, which is recorded only once all of them have it.
    size_t need = (size_t)n_ids, c[6];
    for (int i = 0; i < 6; i++) c[i] = t->cap_ids;
    char **s = vec_grow(t->tok_str, &c[0], need, sizeof *s);
    if (s) t->tok_str = s;
    uint32_t *l = vec_grow(t->tok_len, &c[1], need, sizeof *l);
    if (l) t->tok_len = l;
    uint8_t *sp = vec_grow(t->tok_special, &c[2], need, sizeof *sp);
    if (sp) t->tok_special = sp;
    char **m = vec_grow(t->model_str, &c[3], need, sizeof *m);
    if (m) t->model_str = m;
    char **k = vec_grow(t->model_key, &c[4], need, sizeof *k);
    if (k) t->model_key = k;
    uint32_t *kl = vec_grow(t->model_key_len, &c[5], need, sizeof *kl);
    if (kl) t->model_key_len = kl;
    if (!s || !l || !sp || !m || !k || !kl) return err_set("%s: out of memory (%d ids)", t->source, n_ids);
    t->cap_ids = c[0];
    for (int32_t i = t->n_ids; i < n_ids; i++) {
        t->tok_str[i] = t->model_str[i] = t->model_key[i] = NULL;
        t->tok_len[i] = t->model_key_len[i] = 0;
        t->tok_special[i] = 0;
    }
    t->n_ids = n_ids;
    return 0;
}

static int set_tok_str(tokenizer *t, int32_t id, const char *s, size_t len) {
    char *p = str_dup_n(s, len);
    if (!p) return err_set("%s: out of memory", t->source);
    if (t->tok_str[id] != t->model_str[id]) free(t->tok_str[id]);
    t->tok_str[id] = p;
    t->tok_len[id] = (uint32_t)len;
    return 0;
}

// Model-space form of a vocabulary string: byte-level tokenizers spell bytes with GPT-2's
// alphabet; BPE then runs on raw bytes. Returns 0 when a character is outside the alphabet
// (such a token can never come out of a byte-level word).
static int alphabet_to_bytes(const char *s, size_t len, tok_buf *out) {
    out->len = 0;
    for (size_t i = 0; i < len;) {
        int32_t cp;
        i += (size_t)utf8_next((const uint8_t *)s + i, len - i, &cp);
        int b = tok_cp_to_byte(cp);
        if (b < 0) return 0;
        char c = (char)b;
        if (tok_buf_put(out, &c, 1)) return -1;
    }
    return 1;
}

int tok_model_token(tokenizer *t, int32_t id, const char *s, size_t len) {
    if (id < 0 || id >= t->n_ids) return err_set("%s: vocabulary id %d out of range", t->source, id);
    if (t->model_str[id]) return err_set("%s: vocabulary id %d appears twice", t->source, id);
    char *p = str_dup_n(s, len);
    if (!p) return err_set("%s: out of memory", t->source);
    t->model_str[id] = p;
    if (!t->tok_str[id]) {
        t->tok_str[id] = p;
        t->tok_len[id] = (uint32_t)len;
    }
    char *key = p;
    size_t klen = len;
    if (t->bpe.byte_level) {
        tok_buf b = {0};
        int rc = alphabet_to_bytes(s, len, &b);
        if (rc <= 0) {
            tok_buf_free(&b);
            return rc;
        }
        key = str_dup_n(b.p ? b.p : "", b.len);
        klen = b.len;
        tok_buf_free(&b);
        if (!key) return err_set("%s: out of memory", t->source);
        if (klen == 1 && t->bpe.byte_id[(uint8_t)key[0]] < 0) t->bpe.byte_id[(uint8_t)key[0]] = id;
    } else if (len == 6 && !memcmp(s, "<0x", 3) && s[5] == '>') {
        unsigned v;
        char hex[3] = {s[3], s[4], 0};
        char *end;
        v = (unsigned)strtoul(hex, &end, 16);
        if (*end == '\0' && hex[0] != '+' && hex[0] != '-' && t->bpe.byte_id[v] < 0)
            t->bpe.byte_id[v] = id;
    }
    t->model_key[id] = key;
    t->model_key_len[id] = (uint32_t)klen;
    return tok_str_map_put(&t->bpe.vocab, key, (uint32_t)klen, id);
}

static int model_id(const tokenizer *t, const char *s, size_t len, tok_buf *tmp, int32_t *id) {
    if (!t->bpe.byte_level) {
        *id = tok_str_map_get(&t->bpe.vocab, s, (uint32_t)len);
        return 0;
    }
    int rc = alphabet_to_bytes(s, len, tmp);
    if (rc < 0) return -1;
    *id = rc ? tok_str_map_get(&t->bpe.vocab, tmp->p ? tmp->p : "", (uint32_t)tmp->len) : -1;
    return 0;
}

int tok_model_merge(tokenizer *t, const char *l, size_t ll, const char *r, size_t rl) {
    tok_buf tmp = {0}, cat = {0};
    int32_t a, b, m = -1;
    int rc = model_id(t, l, ll, &tmp, &a) || model_id(t, r, rl, &tmp, &b) ||
             tok_buf_put(&cat, l, ll) || tok_buf_put(&cat, r, rl) ||
             model_id(t, cat.p, cat.len, &tmp, &m);
    tok_buf_free(&tmp);
    if (rc) {
        tok_buf_free(&cat);
        return -1;
    }
    size_t rank = t->n_merge_pairs;
    if (a < 0 || b < 0 || m < 0) {
        rc = err_set("%s: merge %zu '%.*s %.*s': token '%.*s' is not in the vocabulary",
                     t->source, rank + 1, (int)ll, l, (int)rl, r,
                     a < 0 ? (int)ll : b < 0 ? (int)rl : (int)cat.len,
                     a < 0 ? l : b < 0 ? r : cat.p);
        tok_buf_free(&cat);
        return rc;
    }
    tok_buf_free(&cat);
    int32_t *p = vec_grow(t->merge_pairs, &t->cap_merge_pairs, rank + 1, 2 * sizeof *p);
    if (!p) return err_set("%s: out of memory (merges)", t->source);
    t->merge_pairs = p;
    t->merge_pairs[2 * rank] = a;
    t->merge_pairs[2 * rank + 1] = b;
    t->n_merge_pairs++;
    return tok_bpe_add_merge(&t->bpe, a, b, (int32_t)rank, m);
}

int tok_add_added(tokenizer *t, const tok_added *a) {
    int32_t id = a->id;
    // HF gives an added token the model's id when the model already knows the string.
    {
        tok_buf tmp = {0};
        int32_t mid;
        int rc = model_id(t, a->content, a->len, &tmp, &mid);
        tok_buf_free(&tmp);
        if (rc) return -1;
        if (mid >= 0 && t->model_str[mid] && t->model_str[mid][0] && !strcmp(t->model_str[mid], a->content)) id = mid;
    }
    if (id < 0) return err_set("%s: added token '%s' has no id", t->source, a->content);
    if (tok_set_ids(t, id + 1)) return -1;
    tok_added *v = vec_grow(t->added, &t->cap_added, t->n_added + 1, sizeof *v);
    if (!v) return err_set("%s: out of memory", t->source);
    t->added = v;
    tok_added *x = &t->added[t->n_added];
    *x = *a;
    x->id = id;
    x->content = str_dup_n(a->content, a->len);
    if (!x->content) return err_set("%s: out of memory", t->source);
    t->n_added++;
    t->tok_special[id] = (uint8_t)(a->special != 0);
    return set_tok_str(t, id, a->content, a->len);
}

// ---- added-token matching -----------------------------------------------------------------

static tok_scratch *scratch_take(const tokenizer *t);
static void scratch_give(const tokenizer *t, tok_scratch *sc);

static void matcher_free(tok_matcher *m) {
    for (size_t i = 0; i < m->n; i++) free(m->pat[i]);
    free(m->pat);
    free(m->len);
    free(m->token);
    memset(m, 0, sizeof *m);
}

typedef struct {
    const char *s;
    size_t len;
    int32_t token;
} pat_entry;

static int pat_cmp(const void *a, const void *b) {
    const pat_entry *x = a, *y = b;
    uint8_t cx = (uint8_t)x->s[0], cy = (uint8_t)y->s[0];
    if (cx != cy) return cx < cy ? -1 : 1;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return x->token < y->token ? -1 : x->token > y->token;
}

// Normalized added tokens are matched in normalized text, so their patterns are normalized too.
static int matcher_build(tokenizer *t, tok_matcher *m, int normalized) {
    size_t n = 0;
    pat_entry *e = calloc(t->n_added + 1, sizeof *e);
    tok_buf nb = {0}, tmp = {0};
    tok_scratch *sc = scratch_take(t);
    if (!e || !sc) {
        free(e);
        if (sc) scratch_give(t, sc);
        return err_set("%s: out of memory", t->source);
    }
    int rc = 0;
    for (size_t i = 0; i < t->n_added && !rc; i++) {
        tok_added *a = &t->added[i];
        if ((a->normalized && t->n_norm) != normalized || !a->len) continue;
        const char *s = a->content;
        size_t len = a->len;
        if (normalized) {
            rc = tok_normalize(t->norm, t->n_norm, sc, s, len, &nb, &tmp);
            if (rc || !nb.len) continue;
            s = nb.p;
            len = nb.len;
        }
        char *p = str_dup_n(s, len);
        if (!p) rc = err_set("%s: out of memory", t->source);
        else e[n++] = (pat_entry){p, len, (int32_t)i};
    }
    tok_buf_free(&nb);
    tok_buf_free(&tmp);
    scratch_give(t, sc);
    if (!rc) {
        qsort(e, n, sizeof *e, pat_cmp);
        m->pat = calloc(n + 1, sizeof *m->pat);
        m->len = calloc(n + 1, sizeof *m->len);
        m->token = calloc(n + 1, sizeof *m->token);
        if (!m->pat || !m->len || !m->token) rc = err_set("%s: out of memory", t->source);
    }
    if (rc) {
        for (size_t i = 0; i < n; i++) free((char *)e[i].s);
        free(e);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        m->pat[i] = (char *)e[i].s;
        m->len[i] = e[i].len;
        m->token[i] = e[i].token;
    }
    m->n = n;
    size_t j = 0;
    for (int c = 0; c <= 256; c++) {
        while (j < n && (uint8_t)m->pat[j][0] < c) j++;
        m->first[c] = (int32_t)j;
    }
    free(e);
    return 0;
}

// The longest pattern starting at s[i], or -1.
static int matcher_at(const tok_matcher *m, const char *s, size_t len, size_t i) {
    uint8_t c = (uint8_t)s[i];
    for (int32_t k = m->first[c]; k < m->first[c + 1]; k++)
        if (m->len[k] <= len - i && !memcmp(s + i, m->pat[k], m->len[k])) return k;
    return -1;
}

static int32_t last_cp(const char *s, size_t len) {
    if (!len) return -1;
    size_t p = len - 1;
    while (p > 0 && ((uint8_t)s[p] & 0xC0) == 0x80) p--;
    int32_t cp;
    utf8_next((const uint8_t *)s + p, len - p, &cp);
    return cp;
}

static int is_word_char(int32_t cp) {
    if (cp < 0) return 0;
    if (cp == '_' || uc_is_alnum(cp)) return 1;
    utf8proc_category_t c = utf8proc_category(cp);
    return c == UTF8PROC_CATEGORY_MN || c == UTF8PROC_CATEGORY_MC || c == UTF8PROC_CATEGORY_ME ||
           c == UTF8PROC_CATEGORY_PC;
}

static int splits_push(added_splits *a, size_t off, size_t len, int32_t token) {
    added_split *v = vec_grow(a->v, &a->cap, a->n + 1, sizeof *v);
    if (!v) return err_set("tokenizer: out of memory");
    a->v = v;
    a->v[a->n++] = (added_split){off, len, token};
    return 0;
}

// HF AddedVocabulary::find_matches: pieces of s as (offset, length, token index or -1).
static int find_added(const tokenizer *t, const tok_matcher *m, const char *s, size_t len,
                      added_splits *out) {
    out->n = 0;
    size_t start_offset = 0;
    for (size_t i = 0; m->n && i < len;) {
        int k = matcher_at(m, s, len, i);
        if (k < 0) {
            i++;
            continue;
        }
        const tok_added *a = &t->added[m->token[k]];
        size_t start = i, stop = i + m->len[k];
        i = stop;
        if (a->single_word) {
            int32_t before = last_cp(s, start), after = -1;
            if (stop < len) utf8_next((const uint8_t *)s + stop, len - stop, &after);
            if (is_word_char(before) || is_word_char(after)) continue;
        }
        if (a->lstrip) {
            size_t ns = start;
            while (ns > 0) {
                size_t p = ns - 1;
                while (p > 0 && ((uint8_t)s[p] & 0xC0) == 0x80) p--;
                int32_t cp;
                utf8_next((const uint8_t *)s + p, ns - p, &cp);
                if (!uc_is_space(cp)) break;
                ns = p;
            }
            start = ns > start_offset ? ns : start_offset;
        }
        if (a->rstrip) {
            while (stop < len) {
                int32_t cp;
                int n = utf8_next((const uint8_t *)s + stop, len - stop, &cp);
                if (!uc_is_space(cp)) break;
                stop += (size_t)n;
            }
        }
        if (start_offset < start && splits_push(out, start_offset, start - start_offset, -1)) return -1;
        if (splits_push(out, start, stop - start, m->token[k])) return -1;
        start_offset = stop;
    }
    if (start_offset < len && splits_push(out, start_offset, len - start_offset, -1)) return -1;
    return 0;
}

// ---- scratch pool -------------------------------------------------------------------------

static tok_scratch *scratch_take(const tokenizer *tc) {
    tokenizer *t = (tokenizer *)tc;
    pthread_mutex_lock(&t->pool_lock);
    tok_scratch *sc = t->pool;
    if (sc) t->pool = sc->next;
    pthread_mutex_unlock(&t->pool_lock);
    if (sc) return sc;
    sc = calloc(1, sizeof *sc);
    if (!sc) {
        err_set("tokenizer: out of memory");
        return NULL;
    }
    sc->md = pcre2_match_data_create(16, NULL);
    sc->mctx = pcre2_match_context_create(NULL);
    sc->jit = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL);
    if (!sc->md || !sc->mctx) {
        if (sc->md) pcre2_match_data_free(sc->md);
        if (sc->mctx) pcre2_match_context_free(sc->mctx);
        if (sc->jit) pcre2_jit_stack_free(sc->jit);
        free(sc);
        err_set("tokenizer: out of memory");
        return NULL;
    }
    if (sc->jit) pcre2_jit_stack_assign(sc->mctx, NULL, sc->jit);
    return sc;
}

static void scratch_free(tok_scratch *sc) {
    pcre2_match_data_free(sc->md);
    pcre2_match_context_free(sc->mctx);
    if (sc->jit) pcre2_jit_stack_free(sc->jit);
    for (int i = 0; i < 4; i++) tok_buf_free(&sc->buf[i]);
    for (int i = 0; i < 3; i++) tok_spans_free(&sc->spans[i]);
    free(sc->sym);
    free(sc->heap);
    free(sc->added[0].v);
    free(sc->added[1].v);
    free(sc);
}

static void scratch_give(const tokenizer *tc, tok_scratch *sc) {
    tokenizer *t = (tokenizer *)tc;
    pthread_mutex_lock(&t->pool_lock);
    sc->next = t->pool;
    t->pool = sc;
    pthread_mutex_unlock(&t->pool_lock);
}

// ---- encoding -----------------------------------------------------------------------------

// Pre-tokenizes and BPE-encodes one piece of normalized text.
static int encode_piece(const tokenizer *t, tok_scratch *sc, const char *s, size_t len, int first,
                        id_vec *out) {
    if (!t->n_pre) return tok_bpe_encode_word(&t->bpe, sc, s, len, out);
    tok_buf in = {(char *)s, len, len};
    tok_spans *cur = &sc->spans[0], *next = &sc->spans[1];
    cur->n = 0;
    if (tok_spans_push(cur, 0, len, first)) return -1;
    const tok_buf *src = &in;
    for (size_t i = 0; i < t->n_pre; i++) {
        tok_buf *dst = &sc->buf[2 + (i & 1)];
        if (tok_pretokenize(&t->pre[i], sc, src, cur, dst, next)) return -1;
        src = dst;
        tok_spans *x = cur;
        cur = next;
        next = x;
    }
    for (size_t i = 0; i < cur->n; i++)
        if (tok_bpe_encode_word(&t->bpe, sc, src->p + cur->v[i].off, cur->v[i].len, out)) return -1;
    return 0;
}

static int encode_text(const tokenizer *t, tok_scratch *sc, const char *text, size_t len,
                       id_vec *out) {
    added_splits *raw = &sc->added[0], *norm = &sc->added[1];
    if (find_added(t, &t->match_raw, text, len, raw)) return -1;
    for (size_t i = 0; i < raw->n; i++) {
        added_split r = raw->v[i];
        if (r.token >= 0) {
            if (id_vec_push(out, t->added[r.token].id)) return -1;
            continue;
        }
        const char *s = text + r.off;
        size_t sl = r.len;
        if (t->n_norm) {
            if (tok_normalize(t->norm, t->n_norm, sc, s, sl, &sc->buf[1], &sc->buf[2])) return -1;
            s = sc->buf[1].p;
            sl = sc->buf[1].len;
        }
        if (find_added(t, &t->match_norm, s, sl, norm)) return -1;
        for (size_t j = 0; j < norm->n; j++) {
            added_split x = norm->v[j];
            if (x.token >= 0) {
                if (id_vec_push(out, t->added[x.token].id)) return -1;
            } else if (encode_piece(t, sc, s + x.off, x.len, r.off == 0 && x.off == 0, out))
                return -1;
        }
    }
    return 0;
}

int tokenizer_encode(const tokenizer *t, const char *text, size_t len, int add_special,
                     id_vec *out) {
    tok_scratch *sc = scratch_take(t);
    if (!sc) return -1;
    size_t start = out->len;
    int rc = 0;
    if (utf8_sanitize(text, len, &sc->buf[0]) == (size_t)-1) rc = -1;
    for (size_t i = 0; !rc && add_special && i < t->n_prefix; i++) rc = id_vec_push(out, t->prefix[i]);
    if (!rc) rc = encode_text(t, sc, sc->buf[0].p, sc->buf[0].len, out);
    for (size_t i = 0; !rc && add_special && i < t->n_suffix; i++) rc = id_vec_push(out, t->suffix[i]);
    scratch_give(t, sc);
    if (rc) out->len = start;
    return rc;
}

// ---- finishing and fingerprint ------------------------------------------------------------

static void fp_bytes(sha256_ctx *c, const void *p, size_t n) {
    uint64_t len = n;
    sha256_update(c, &len, sizeof len);
    sha256_update(c, p, n);
}

static void fp_int(sha256_ctx *c, int64_t v) { sha256_update(c, &v, sizeof v); }

static void fingerprint(tokenizer *t) {
    sha256_ctx c;
    sha256_init(&c);
    fp_bytes(&c, "medtune-tokenizer-1", 19);
    fp_int(&c, (int64_t)t->n_norm);
    for (size_t i = 0; i < t->n_norm; i++) {
        const tok_normalizer *n = &t->norm[i];
        fp_int(&c, n->type);
        fp_bytes(&c, n->pattern, n->pattern_len);
        fp_bytes(&c, n->re.source, n->re.source ? strlen(n->re.source) : 0);
        fp_bytes(&c, n->content, n->content_len);
        fp_int(&c, n->left);
        fp_int(&c, n->right);
    }
    fp_int(&c, (int64_t)t->n_pre);
    for (size_t i = 0; i < t->n_pre; i++) {
        const tok_pretok *p = &t->pre[i];
        fp_int(&c, p->type);
        fp_bytes(&c, p->re.source, p->re.source ? strlen(p->re.source) : 0);
        fp_bytes(&c, p->literal, p->literal_len);
        int64_t f[7] = {p->behavior, p->invert, p->add_prefix_space, p->use_regex,
                        p->prepend_scheme, p->split, p->individual_digits};
        for (int k = 0; k < 7; k++) fp_int(&c, f[k]);
        fp_bytes(&c, p->replacement, (size_t)p->replacement_len);
    }
    int64_t m[5] = {t->bpe.byte_level, t->bpe.unk_id, t->bpe.byte_fallback, t->bpe.fuse_unk,
                    t->bpe.ignore_merges};
    for (int k = 0; k < 5; k++) fp_int(&c, m[k]);
    fp_int(&c, t->n_ids);
    for (int32_t i = 0; i < t->n_ids; i++)
        if (t->model_key[i]) {
            fp_int(&c, i);
            fp_bytes(&c, t->model_key[i], t->model_key_len[i]);
        }
    fp_int(&c, (int64_t)t->n_merge_pairs);
    sha256_update(&c, t->merge_pairs, t->n_merge_pairs * 2 * sizeof(int32_t));
    fp_int(&c, (int64_t)t->n_added);
    for (size_t i = 0; i < t->n_added; i++) {
        const tok_added *a = &t->added[i];
        fp_int(&c, a->id);
        fp_bytes(&c, a->content, a->len);
        int64_t f[5] = {a->special, a->lstrip, a->rstrip, a->normalized, a->single_word};
        for (int k = 0; k < 5; k++) fp_int(&c, f[k]);
    }
    fp_int(&c, (int64_t)t->n_prefix);
    sha256_update(&c, t->prefix, t->n_prefix * sizeof(int32_t));
    fp_int(&c, (int64_t)t->n_suffix);
    sha256_update(&c, t->suffix, t->n_suffix * sizeof(int32_t));
    uint8_t d[32];
    sha256_final(&c, d);
    sha256_digest_to_hex(d, t->fingerprint);
}

// HF reports a normalized added token by its normalized content (id_to_token, decode), and
// decode(skip_special) then only skips it if that string is itself a special token's content.
static int normalized_added_strings(tokenizer *t) {
    if (!t->n_norm) return 0;
    tok_scratch *sc = scratch_take(t);
    if (!sc) return -1;
    tok_buf nb = {0}, tmp = {0};
    int rc = 0;
    for (size_t i = 0; i < t->n_added && !rc; i++) {
        tok_added *a = &t->added[i];
        if (!a->normalized) continue;
        if ((rc = tok_normalize(t->norm, t->n_norm, sc, a->content, a->len, &nb, &tmp))) break;
        // A token that normalizes to nothing leaves nb.p NULL, which memcmp must not see.
        const char *norm = nb.p ? nb.p : "";
        rc = set_tok_str(t, a->id, norm, nb.len);
        int special = 0;
        for (size_t k = 0; k < t->n_added; k++)
            special |= t->added[k].special && t->added[k].len == nb.len && !memcmp(t->added[k].content, norm, nb.len);
        t->tok_special[a->id] = (uint8_t)special;
    }
    tok_buf_free(&nb);
    tok_buf_free(&tmp);
    scratch_give(t, sc);
    return rc;
}

// Completes loading: added-token matchers, adds_bos, fingerprint.
static int tok_finish(tokenizer *t) {
    if (matcher_build(t, &t->match_raw, 0) || matcher_build(t, &t->match_norm, 1) ||
        normalized_added_strings(t))
        return -1;
    t->adds_bos = 0;
    for (size_t i = 0; i < t->n_prefix; i++) t->adds_bos |= t->bos_id >= 0 && t->prefix[i] == t->bos_id;
    fingerprint(t);
    return 0;
}

// ---- public API ---------------------------------------------------------------------------

tokenizer *tokenizer_load(const char *path) {
    char json[4096];
    const char *file = path;
    if (path_is_dir(path)) {
        if (path_join(json, sizeof json, path, "tokenizer.json")) return NULL;
        if (!path_exists(json)) {
            err_set("%s: no tokenizer.json in this directory", path);
            return NULL;
        }
        file = json;
    } else if (!path_exists(path)) {
        err_set("%s: no such file or directory", path);
        return NULL;
    }
    tokenizer *t = tok_alloc(file);
    if (!t) return NULL;
    int rc = gguf_path_is_gguf(file) ? tok_load_gguf(t, file) : tok_load_json(t, file);
    if (rc || tok_finish(t)) {
        tokenizer_free(t);
        return NULL;
    }
    return t;
}

void tokenizer_free(tokenizer *t) {
    if (!t) return;
    for (size_t i = 0; i < t->n_norm; i++) tok_normalizer_free(&t->norm[i]);
    for (size_t i = 0; i < t->n_pre; i++) tok_pretok_free(&t->pre[i]);
    for (size_t i = 0; i < t->n_dec; i++) tok_decoder_free(&t->dec[i]);
    tok_bpe_free(&t->bpe);
    for (int32_t i = 0; i < t->n_ids; i++) {
        if (t->tok_str[i] != t->model_str[i]) free(t->tok_str[i]);
        if (t->model_key[i] != t->model_str[i]) free(t->model_key[i]);
        free(t->model_str[i]);
    }
    free(t->tok_str);
    free(t->tok_len);
    free(t->tok_special);
    free(t->model_str);
    free(t->model_key);
    free(t->model_key_len);
    free(t->merge_pairs);
    for (size_t i = 0; i < t->n_added; i++) free(t->added[i].content);
    free(t->added);
    matcher_free(&t->match_raw);
    matcher_free(&t->match_norm);
    free(t->prefix);
    free(t->suffix);
    free(t->chat_template);
    free(t->source);
    while (t->pool) {
        tok_scratch *n = t->pool->next;
        scratch_free(t->pool);
        t->pool = n;
    }
    pthread_mutex_destroy(&t->pool_lock);
    free(t);
}

int tokenizer_vocab_size(const tokenizer *t) { return t->n_ids; }
int tokenizer_bos_id(const tokenizer *t) { return t->bos_id; }
int tokenizer_eos_id(const tokenizer *t) { return t->eos_id; }
int tokenizer_adds_bos(const tokenizer *t) { return t->adds_bos; }
const char *tokenizer_chat_template(const tokenizer *t) { return t->chat_template; }
const char *tokenizer_kind(const tokenizer *t) { return t->kind; }
const char *tokenizer_fingerprint(const tokenizer *t) { return t->fingerprint; }

int tokenizer_token_id(const tokenizer *t, const char *token) {
    size_t len = strlen(token);
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].len == len && !memcmp(t->added[i].content, token, len)) return t->added[i].id;
    tok_buf tmp = {0};
    int32_t id;
    int rc = model_id(t, token, len, &tmp, &id);
    tok_buf_free(&tmp);
    if (rc || id < 0 || strcmp(t->model_str[id], token)) return -1;
    return id;
}

const char *tokenizer_token_str(const tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_ids ? t->tok_str[id] : NULL;
}
