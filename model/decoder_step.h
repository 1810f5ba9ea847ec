// The decoder's one-row step in a single OpenMP region (model/decoder.c's internals). A decode
// step through forward_chunk opens a region per product group (q/k/v, o, gate/up, down: four
// per layer, each waking the sleeping threads under OMP_WAIT_POLICY=PASSIVE and waiting for
// them at its end). Here the threads stay in one region for all the layers and meet at five
// barriers per layer, and the one-row work between the products is split or repeated instead
// of run by one thread while the others wait:
//   1. every thread norms x and rounds it to int8 itself (C values: cheaper than a barrier);
//      the output rows of q, k and v are split over the threads;
//   2. the KV groups are split: per group, k's norm and rope, the cache write, then each of
//      its query heads' norm, rope, scale and attention;
//   3. the rows of o are split, each thread adding its rows to the residual stream;
//   4. every thread norms x again; the rows of gate and up are split, each thread applying
//      the activation to its rows;
//   5. the rows of down are split, each thread adding its rows to the residual stream.
// Every element is computed by the same kernel on the same inputs as in forward_chunk, so the
// step gives forward_chunk's bits (tests/test_decoder_step.c).
#ifndef MEDTUNE_MODEL_DECODER_STEP_H
#define MEDTUNE_MODEL_DECODER_STEP_H

#include "model/decoder.h"

// Bytes of int8 scratch one thread of the step needs for model c.
size_t decoder_step_xq_bytes(const model_config *c);
// 1 when the one-row step of d may run as one region: more than one thread, step_region set,
// no adapter, a llama-family layer (no gpt2 LayerNorm biases, no gemma3 post-norms), every
// layer matrix stored quantized, and (step_region 1) products large enough to split.
int decoder_step_fits(const decoder *d, int64_t parallel_min_weights);
// The layers of a one-row step at rotary position pos into cache slot p0 (d->x in and out),
// as forward_chunk's layer loop with n = 1.
void decoder_step_layers(decoder *d, int32_t pos, int p0);
// att[n, head h] for the n new rows (cache slots p0..p0+n-1) of layer l. Row i attends to the
// slots before p0 and to the new rows first[i]..i: first[i] = 0 everywhere is causal
// attention, a larger first[i] starts a branch that does not see the rows of the branches
// before it. With a sliding window W > 0, row i also drops the keys more than W - 1 positions
// before it (positions count from the row's rotary position pos[i], as in the training
// passes).
void decoder_attend_head(decoder *d, int l, int h, int n, int p0, const int *first,
                         const int32_t *pos, int window);

#endif
