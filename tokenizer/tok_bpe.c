// The BPE model: vocabulary and merge hash tables, the word -> ids merge loop (a min-heap of
// candidate pairs over a linked list of symbols, as HF's Word::merge_all), and a word cache.
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/strbuf.h"
#include "tokenizer/tok_internal.h"

// ---- byte-level alphabet ------------------------------------------------------------------

// GPT-2 maps printable bytes (! .. ~, ¡ .. ¬, ® .. ÿ) to themselves and the other 68 bytes,
// in increasing order, to U+0100 onwards.
static int printable_byte(int b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

// Code points U+0000..U+0143 back to bytes (-1: not in the alphabet), built once.
static int16_t cp_byte[324];
static pthread_once_t cp_byte_once = PTHREAD_ONCE_INIT;

static void cp_byte_init(void) {
    for (int i = 0; i < 324; i++) cp_byte[i] = -1;
    int n = 256;
    for (int b = 0; b < 256; b++) cp_byte[printable_byte(b) ? b : n++] = (int16_t)b;
}

int tok_cp_to_byte(int32_t cp) {
    pthread_once(&cp_byte_once, cp_byte_init);
    return cp >= 0 && cp < 324 ? cp_byte[cp] : -1;
}

// ---- string -> id map ---------------------------------------------------------------------

static uint32_t hash_bytes(const char *s, size_t len) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

int tok_str_map_init(tok_str_map *m, size_t expected) {
    size_t cap = 64;
    while (cap < expected * 2) cap *= 2;
    m->slots = calloc(cap, sizeof *m->slots);
    if (!m->slots) return err_set("tokenizer: out of memory (vocabulary of %zu)", expected);
    m->mask = cap - 1;
    m->count = 0;
    return 0;
}

static int str_map_grow(tok_str_map *m) {
    tok_str_map n;
    if (tok_str_map_init(&n, (m->mask + 1))) return -1;
    for (size_t i = 0; i <= m->mask; i++) {
        tok_str_slot *s = &m->slots[i];
        if (!s->s) continue;
        size_t j = s->hash & n.mask;
        while (n.slots[j].s) j = (j + 1) & n.mask;
        n.slots[j] = *s;
    }
    n.count = m->count;
    free(m->slots);
    *m = n;
    return 0;
}

int tok_str_map_put(tok_str_map *m, const char *s, uint32_t len, int32_t id) {
    if ((m->count + 1) * 2 > m->mask + 1 && str_map_grow(m)) return -1;
    uint32_t h = hash_bytes(s, len);
    size_t j = h & m->mask;
    for (; m->slots[j].s; j = (j + 1) & m->mask) {
        tok_str_slot *x = &m->slots[j];
        if (x->hash == h && x->len == len && !memcmp(x->s, s, len)) {
            x->id = id;
            return 0;
        }
    }
    m->slots[j] = (tok_str_slot){s, len, h, id};
    m->count++;
    return 0;
}

int32_t tok_str_map_get(const tok_str_map *m, const char *s, uint32_t len) {
    if (!m->slots) return -1;
    uint32_t h = hash_bytes(s, len);
    for (size_t j = h & m->mask; m->slots[j].s; j = (j + 1) & m->mask) {
        const tok_str_slot *x = &m->slots[j];
        if (x->hash == h && x->len == len && !memcmp(x->s, s, len)) return x->id;
    }
    return -1;
}

void tok_str_map_free(tok_str_map *m) {
    free(m->slots);
    memset(m, 0, sizeof *m);
}

// ---- merges -------------------------------------------------------------------------------

static size_t merge_hash(uint64_t key, size_t mask) {
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & mask;
}

int tok_bpe_init(tok_bpe *b, size_t n_vocab, size_t n_merges) {
    memset(b, 0, sizeof *b);
    b->unk_id = -1;
    for (int i = 0; i < 256; i++) b->byte_id[i] = -1;
    if (tok_str_map_init(&b->vocab, n_vocab)) return -1;
    size_t cap = 64;
    while (cap < n_merges * 2) cap *= 2;
    b->merges = malloc(cap * sizeof *b->merges);
    if (!b->merges) return err_set("tokenizer: out of memory (%zu merges)", n_merges);
    for (size_t i = 0; i < cap; i++) b->merges[i].key = UINT64_MAX;
    b->merges_mask = cap - 1;
    // A stripe's slots are allocated by its first cache_put: 16 x 1024 slots (384 KB) zeroed
    // for every tokenizer cost more than loading a small one, and most stripes of a tokenizer
    // that encodes a few words stay empty.
    for (int i = 0; i < TOK_CACHE_STRIPES; i++) {
        pthread_mutex_init(&b->cache[i].lock, NULL);
        b->cache[i].mask = 1023;
    }
    return 0;
}

static int merges_grow(tok_bpe *b) {
    size_t cap = 2 * (b->merges_mask + 1);
    tok_merge_slot *m = malloc(cap * sizeof *m);
    if (!m) return err_set("tokenizer: out of memory (%zu merges)", b->n_merges);
    for (size_t i = 0; i < cap; i++) m[i].key = UINT64_MAX;
    for (size_t i = 0; i <= b->merges_mask; i++) {
        if (b->merges[i].key == UINT64_MAX) continue;
        size_t j = merge_hash(b->merges[i].key, cap - 1);
        while (m[j].key != UINT64_MAX) j = (j + 1) & (cap - 1);
        m[j] = b->merges[i];
    }
    free(b->merges);
    b->merges = m;
    b->merges_mask = cap - 1;
    return 0;
}

int tok_bpe_add_merge(tok_bpe *b, int32_t left, int32_t right, int32_t rank, int32_t id) {
    if ((b->n_merges + 1) * 2 > b->merges_mask + 1 && merges_grow(b)) return -1;
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    size_t j = merge_hash(key, b->merges_mask);
    for (; b->merges[j].key != UINT64_MAX; j = (j + 1) & b->merges_mask)
        if (b->merges[j].key == key) return 0;  // a repeated pair keeps its first (best) rank
    b->merges[j] = (tok_merge_slot){key, rank, id};
    b->n_merges++;
    return 0;
}

static const tok_merge_slot *merge_get(const tok_bpe *b, int32_t left, int32_t right) {
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    for (size_t j = merge_hash(key, b->merges_mask); b->merges[j].key != UINT64_MAX;
         j = (j + 1) & b->merges_mask)
        if (b->merges[j].key == key) return &b->merges[j];
    return NULL;
}

// ---- the merge loop -----------------------------------------------------------------------

typedef struct {
    int32_t id, prev, next, alive;
} symbol;

typedef struct {
    int32_t rank, pos, id;
} candidate;

static int cand_less(candidate a, candidate b) {
    return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos);
}

static void heap_push(candidate *h, size_t *n, candidate c) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_less(c, h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = c;
}

static candidate heap_pop(candidate *h, size_t *n) {
    candidate top = h[0], last = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        candidate best = last;
        if (l < *n && cand_less(h[l], best)) {
            m = l;
            best = h[l];
        }
        if (r < *n && cand_less(h[r], best)) m = r;
        if (m == i) break;
        h[i] = h[m];
        i = m;
    }
    if (*n) h[i] = last;
    return top;
}

static int scratch_grow(tok_scratch *sc, size_t n) {
    void *s = vec_grow(sc->sym, &sc->sym_cap, n, sizeof(symbol));
    if (!s) return err_set("tokenizer: out of memory (word of %zu symbols)", n);
    sc->sym = s;
    // Each merge pushes at most two candidates on top of the n - 1 initial ones.
    void *h = vec_grow(sc->heap, &sc->heap_cap, 3 * n, sizeof(candidate));
    if (!h) return err_set("tokenizer: out of memory (word of %zu symbols)", n);
    sc->heap = h;
    return 0;
}

static void sym_add(symbol *s, size_t *n, int32_t id) {
    s[*n] = (symbol){id, (int32_t)*n - 1, (int32_t)*n + 1, 1};
    (*n)++;
}

// Initial symbols of a word, with HF's unknown / byte-fallback rules.
static size_t word_symbols(const tok_bpe *b, const char *w, size_t len, symbol *s) {
    size_t n = 0;
    if (b->byte_level) {
        for (size_t i = 0; i < len; i++) {
            int32_t id = b->byte_id[(uint8_t)w[i]];
            if (id >= 0) sym_add(s, &n, id);
            else if (b->unk_id >= 0 && !(b->fuse_unk && n && s[n - 1].id == b->unk_id))
                sym_add(s, &n, b->unk_id);
        }
        return n;
    }
    int pending_unk = 0;  // HF keeps a run of unknowns aside until a known character comes
    for (size_t i = 0; i < len;) {
        int32_t cp;
        int k = utf8_next((const uint8_t *)w + i, len - i, &cp);
        int32_t id = tok_str_map_get(&b->vocab, w + i, (uint32_t)k);
        if (id >= 0) {
            if (pending_unk) sym_add(s, &n, b->unk_id);
            pending_unk = 0;
            sym_add(s, &n, id);
        } else {
            int done = 0;
            if (b->byte_fallback) {
                done = 1;
                for (int j = 0; j < k; j++) done &= b->byte_id[(uint8_t)w[i + j]] >= 0;
                for (int j = 0; done && j < k; j++) sym_add(s, &n, b->byte_id[(uint8_t)w[i + j]]);
            }
            if (!done && b->unk_id >= 0) {
                if (pending_unk && !b->fuse_unk) sym_add(s, &n, b->unk_id);
                pending_unk = 1;
            }
        }
        i += (size_t)k;
    }
    if (pending_unk) sym_add(s, &n, b->unk_id);
    return n;
}

static int merge_word(const tok_bpe *b, tok_scratch *sc, const char *w, size_t len, id_vec *out) {
    if (scratch_grow(sc, len + 1)) return -1;
    symbol *s = sc->sym;
    candidate *h = sc->heap;
    size_t n = word_symbols(b, w, len, s), nh = 0;
    if (n) s[n - 1].next = -1;
    for (size_t i = 0; i + 1 < n; i++) {
        const tok_merge_slot *m = merge_get(b, s[i].id, s[i + 1].id);
        if (m) heap_push(h, &nh, (candidate){m->rank, (int32_t)i, m->id});
    }
    while (nh) {
        candidate c = heap_pop(h, &nh);
        symbol *a = &s[c.pos];
        if (!a->alive || a->next < 0) continue;
        symbol *r = &s[a->next];
        const tok_merge_slot *m = merge_get(b, a->id, r->id);
        if (!m || m->id != c.id) continue;  // stale: a neighbour changed since it was queued
        a->id = c.id;
        r->alive = 0;
        a->next = r->next;
        if (a->next >= 0) s[a->next].prev = c.pos;
        if (a->prev >= 0 && (m = merge_get(b, s[a->prev].id, a->id)))
            heap_push(h, &nh, (candidate){m->rank, a->prev, m->id});
        if (a->next >= 0 && (m = merge_get(b, a->id, s[a->next].id)))
            heap_push(h, &nh, (candidate){m->rank, c.pos, m->id});
    }
    for (size_t i = 0; i < n; i++)
        if (s[i].alive && id_vec_push(out, s[i].id)) return -1;
    return 0;
}

// ---- word cache ---------------------------------------------------------------------------

#define CACHE_MAX_WORD 64

static int cache_get(const tok_bpe *b, uint32_t h, const char *w, size_t len, id_vec *out) {
    tok_cache_stripe *c = (tok_cache_stripe *)&b->cache[h % TOK_CACHE_STRIPES];
    int found = 0;
    pthread_mutex_lock(&c->lock);
    for (size_t j = (h >> 4) & c->mask; c->slots && c->slots[j].s; j = (j + 1) & c->mask) {
        tok_str_slot *x = &c->slots[j];
        if (x->hash == h && x->len == len && !memcmp(x->s, w, len)) {
            int32_t ids[CACHE_MAX_WORD];
            memcpy(ids, x->s + len, (size_t)x->id * sizeof(int32_t));
            int nid = x->id;
            pthread_mutex_unlock(&c->lock);
            for (int i = 0; i < nid; i++)
                if (id_vec_push(out, ids[i])) return -1;
            return 1;
        }
    }
    pthread_mutex_unlock(&c->lock);
    return found;
}

static void cache_put(const tok_bpe *b, uint32_t h, const char *w, size_t len, const int32_t *ids,
                      size_t nid) {
    tok_cache_stripe *c = (tok_cache_stripe *)&b->cache[h % TOK_CACHE_STRIPES];
    char *blob = malloc(len + nid * sizeof(int32_t));
    if (!blob) return;  // the cache is only an accelerator
    memcpy(blob, w, len);
    memcpy(blob + len, ids, nid * sizeof(int32_t));
    pthread_mutex_lock(&c->lock);
    if (!c->slots && !(c->slots = calloc(c->mask + 1, sizeof *c->slots))) {
        pthread_mutex_unlock(&c->lock);
        free(blob);
        return;
    }
    if ((c->count + 1) * 2 > c->mask + 1) {  // full: start over rather than track recency
        for (size_t j = 0; j <= c->mask; j++) free((char *)c->slots[j].s);
        memset(c->slots, 0, (c->mask + 1) * sizeof *c->slots);
        c->count = 0;
    }
    size_t j = (h >> 4) & c->mask;
    for (; c->slots[j].s; j = (j + 1) & c->mask) {
        tok_str_slot *x = &c->slots[j];
        if (x->hash == h && x->len == len && !memcmp(x->s, w, len)) {  // another thread won
            pthread_mutex_unlock(&c->lock);
            free(blob);
            return;
        }
    }
    c->slots[j] = (tok_str_slot){blob, (uint32_t)len, h, (int32_t)nid};
    c->count++;
    pthread_mutex_unlock(&c->lock);
}

int tok_bpe_encode_word(const tok_bpe *b, tok_scratch *sc, const char *w, size_t len,
                        id_vec *out) {
    if (!len) return 0;
    if (b->ignore_merges) {
        int32_t id = tok_str_map_get(&b->vocab, w, (uint32_t)len);
        if (id >= 0) return id_vec_push(out, id);
    }
    if (len == 1 && b->byte_level && b->byte_id[(uint8_t)w[0]] >= 0)
        return id_vec_push(out, b->byte_id[(uint8_t)w[0]]);
    if (len > CACHE_MAX_WORD) return merge_word(b, sc, w, len, out);
    uint32_t h = hash_bytes(w, len);
    int rc = cache_get(b, h, w, len, out);
    if (rc) return rc < 0 ? -1 : 0;
    size_t start = out->len;
    if (merge_word(b, sc, w, len, out)) return -1;
    // A word of at most CACHE_MAX_WORD bytes never yields more ids than bytes, except unknown
    // characters without fusion, which also stay below one id per byte. A word that yields no
    // id (unknown characters without an unk token) is not cached: `out` may still be empty.
    if (out->len > start && out->len - start <= CACHE_MAX_WORD)
        cache_put(b, h, w, len, out->data + start, out->len - start);
    return 0;
}

void tok_bpe_free(tok_bpe *b) {
    tok_str_map_free(&b->vocab);
    free(b->merges);
    for (int i = 0; i < TOK_CACHE_STRIPES; i++) {
        // Only stripes that cached words, and only their filled slots: free(NULL) is a no-op,
        // but under ASan each call records a stack trace, and the 16k empty slots made freeing
        // a tokenizer cost more than loading it.
        for (size_t j = 0; b->cache[i].count && j <= b->cache[i].mask; j++)
            if (b->cache[i].slots[j].s) free((char *)b->cache[i].slots[j].s);
        free(b->cache[i].slots);
        pthread_mutex_destroy(&b->cache[i].lock);
    }
    free(b->arena);
    memset(b, 0, sizeof *b);
}
