// 128-bit hashes of cleaned document text, for exact dedup and the train/val split, and a
// set of them. The hash is part of the shard format (it decides each document's split), so
// changing it needs a new manifest version. Not cryptographic.
#ifndef MEDTUNE_DATA_PREP_DOC_HASH_H
#define MEDTUNE_DATA_PREP_DOC_HASH_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t lo, hi;
} doc_hash;

doc_hash doc_hash_bytes(const void *data, size_t len);
// Position of the document in [0, 1): it goes to val when below val_fraction.
double doc_hash_unit(doc_hash h);

typedef struct {
    doc_hash *slots;
    size_t cap, count;
} doc_hash_set;

// Inserts h; returns 1 if it was already present, 0 if added, -1 when out of memory.
int doc_hash_set_insert(doc_hash_set *s, doc_hash h);
void doc_hash_set_free(doc_hash_set *s);

#endif
