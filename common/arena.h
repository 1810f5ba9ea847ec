// One allocation carved into aligned slices by a single list of buffers. The list is a function
// that calls ARENA_CARVE once per buffer; run over a carver with no memory it only adds up the
// size, run again over the allocation it hands out the slices. Size and slices come from the
// same code, so they cannot drift apart (a second, hand-kept size formula once reserved memory
// that no slice used, and could as easily have reserved too little).
#ifndef MEDTUNE_COMMON_ARENA_H
#define MEDTUNE_COMMON_ARENA_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/asan_interface.h>
#endif

// Every slice starts and ends on a cache line: no two buffers share a line (threads writing
// neighbouring buffers do not contend), and the whole arena is a multiple of the alignment,
// as aligned_alloc requires.
#define ARENA_ALIGN 64

typedef struct {
    char *base;   // the allocation, or NULL while sizing
    size_t used;  // bytes handed out so far, each slice rounded up to ARENA_ALIGN
} arena_carver;

static inline size_t arena_round(size_t bytes) {
    return (bytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
}

// The next slice of count elements of elem bytes; NULL while sizing or for an empty slice.
// Under AddressSanitizer the padding after the slice is poisoned, so a kernel that runs past
// its buffer into the padding is reported instead of silently writing there.
static inline void *arena_carve(arena_carver *c, int64_t count, size_t elem) {
    const size_t bytes = (size_t)count * elem, at = c->used;
    c->used += arena_round(bytes);
    if (!c->base || count == 0) return NULL;
#ifdef __SANITIZE_ADDRESS__
    ASAN_POISON_MEMORY_REGION(c->base + at + bytes, arena_round(bytes) - bytes);
#endif
    return c->base + at;
}

// ptr = the next slice of count elements of ptr's own type.
#define ARENA_CARVE(c, ptr, count) ((ptr) = arena_carve((c), (count), sizeof *(ptr)))

// The allocation for a carver that has sized a list; free() releases it.
static inline void *arena_alloc(const arena_carver *sized) {
    return aligned_alloc(ARENA_ALIGN, sized->used);
}

#endif
