// Causal multi-head attention with grouped KV heads, forward and backward.
// Layout: q [B*T, H*D], k and v [B*T, KV*D] (row n = b*T + t), head h reads kv head h / (H/KV).
// Query t attends to keys s in [start[b*T+t], t]: start is 0 for plain causal attention and the
// first position of t's document for document attention (packed documents kept apart).
#ifndef MEDTUNE_MODEL_ATTENTION_H
#define MEDTUNE_MODEL_ATTENTION_H

#include <stdint.h>

// out [B*T, H*D]; probs [B, H, T, T] (softmax rows, zero outside the allowed range) saved for
// backward; scores are scaled by 1/sqrt(D).
void attention_forward(float *out, float *probs, const float *q, const float *k, const float *v,
                       const int32_t *start, int B, int T, int H, int KV, int D);

// dq [B*T, H*D] is overwritten; dk, dv [B*T, KV*D] are accumulated (+=).
// scratch holds T*T floats (attention_scratch_floats()) for each of n_threads threads; the
// loop uses at most n_threads, whatever the OpenMP setting is now.
void attention_backward(float *dq, float *dk, float *dv, float *scratch, int n_threads,
                        const float *dout, const float *probs, const float *q, const float *k,
                        const float *v, const int32_t *start, int B, int T, int H, int KV, int D);

int64_t attention_scratch_floats(int T);

#endif
