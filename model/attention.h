// Causal multi-head attention with grouped KV heads, forward and backward, tiled with an online
// softmax (FlashAttention-2 style): no [T, T] matrix is ever stored.
// Layout: q [B*T, H*D], k and v [B*T, KV*D] (row n = b*T + t), head h reads kv head h / (H/KV).
// Query t attends to keys s in [start[b*T+t], t]. start[n] is any lower bound <= t: 0 for plain
// causal attention, the first position of t's document for document attention, or a sliding
// window's max(document start, t - window + 1). Key tiles that no query of a tile may see are
// skipped, not computed and masked.
#ifndef MEDTUNE_MODEL_ATTENTION_H
#define MEDTUNE_MODEL_ATTENTION_H

#include <stdint.h>

// Query rows and key rows per tile: fixed, so every sum has the same grouping whatever the
// thread count (docs/design.md §7). Measured choice: docs/training.md#attention.
enum { ATTENTION_TILE_Q = 64, ATTENTION_TILE_K = 64 };

// out [B*T, H*D]; lse [B, H, T]: log-sum-exp of each query row's scaled scores, all that backward
// needs besides q, k, v and out. Scores are scaled by 1/sqrt(D). scratch holds
// attention_scratch_floats() floats; the loop uses at most n_threads threads.
void attention_forward(float *out, float *lse, float *scratch, int n_threads, const float *q,
                       const float *k, const float *v, const int32_t *start, int B, int T, int H,
                       int KV, int D);

// dq [B*T, H*D] is overwritten; dk, dv [B*T, KV*D] are accumulated (+=). out and lse are the
// forward's; the probabilities are recomputed tile by tile from lse.
void attention_backward(float *dq, float *dk, float *dv, float *scratch, int n_threads,
                        const float *dout, const float *out, const float *lse, const float *q,
                        const float *k, const float *v, const int32_t *start, int B, int T, int H,
                        int KV, int D);

// Scratch of both passes for n_threads threads: per thread two score tiles and a row of T,
// plus each query head's own dk and dv [T, D] (summed over a KV group in a fixed order).
int64_t attention_scratch_floats(int B, int T, int H, int D, int n_threads);

#endif
