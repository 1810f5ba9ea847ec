// Deterministic random numbers whose whole state is four 64-bit words, so checkpoints can store
// and restore it exactly (xoshiro-style generator seeded through splitmix64).
#ifndef MEDTUNE_COMMON_RNG_H
#define MEDTUNE_COMMON_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} rng_state;

void rng_init(rng_state *r, uint64_t seed);
uint64_t rng_next(rng_state *r);
// Uniform in [0, 1) with 24 random bits (exactly representable in float).
float rng_uniform(rng_state *r);
// Uniform integer in [0, n).
uint64_t rng_below(rng_state *r, uint64_t n);
// Stateless hash of (seed, stream, counter): for randomness that must be regenerated on demand.
uint64_t rng_hash64(uint64_t seed, uint64_t stream, uint64_t counter);

#endif
