#include "data_prep/doc_hash.h"

#include <stdlib.h>
#include <string.h>

static uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

// MurmurHash3's 64-bit finaliser: every input bit affects every output bit.
static uint64_t fmix(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ull;
    k ^= k >> 33;
    return k;
}

doc_hash doc_hash_bytes(const void *data, size_t len) {
    const unsigned char *p = data;
    uint64_t a = 0x9e3779b97f4a7c15ull, b = 0x632be59bd9b4e019ull;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        a = rotl((a ^ w) * 0x87c37b91114253d5ull, 29);
        b = rotl((b + w) * 0x4cf5ad432745937full, 31) ^ a;
    }
    uint64_t w = 0;
    memcpy(&w, p + i, len - i);
    a = rotl((a ^ w) * 0x87c37b91114253d5ull, 29);
    b = rotl((b + w) * 0x4cf5ad432745937full, 31) ^ a;
    doc_hash h;
    h.lo = fmix(a ^ (uint64_t)len);
    h.hi = fmix(b + h.lo);
    return h;
}

double doc_hash_unit(doc_hash h) { return (double)(h.lo >> 11) * 0x1.0p-53; }

static int is_empty(doc_hash h) { return h.lo == 0 && h.hi == 0; }

static int grow(doc_hash_set *s) {
    size_t cap = s->cap ? s->cap * 2 : 1024;
    doc_hash *slots = calloc(cap, sizeof *slots);
    if (!slots) return -1;
    for (size_t i = 0; i < s->cap; i++) {
        if (is_empty(s->slots[i])) continue;
        size_t j = s->slots[i].lo & (cap - 1);
        while (!is_empty(slots[j])) j = (j + 1) & (cap - 1);
        slots[j] = s->slots[i];
    }
    free(s->slots);
    s->slots = slots;
    s->cap = cap;
    return 0;
}

int doc_hash_set_insert(doc_hash_set *s, doc_hash h) {
    if (is_empty(h)) h.hi = 1;  // (0, 0) marks free slots
    if ((s->count + 1) * 2 > s->cap && grow(s)) return -1;
    size_t j = h.lo & (s->cap - 1);
    while (!is_empty(s->slots[j])) {
        if (s->slots[j].lo == h.lo && s->slots[j].hi == h.hi) return 1;
        j = (j + 1) & (s->cap - 1);
    }
    s->slots[j] = h;
    s->count++;
    return 0;
}

void doc_hash_set_free(doc_hash_set *s) {
    free(s->slots);
    memset(s, 0, sizeof *s);
}
