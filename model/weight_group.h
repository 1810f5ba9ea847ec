// Few-row products that share their input, run as one: the decoder's q/k/v projections all
// read the normed row, gate and up read it too. Separately, each product would open its own
// OpenMP region (waking the other threads and waiting for them at its end) and round the same
// input to int8 again; here the output rows of every matrix of the group are one list of
// tasks split over the threads of a single region, and the input is rounded once per
// activation block size (32 or 256). Each output row is computed exactly as weight_gemv or
// weight_gemv_int8 computes it (same kernel, same input rounding, same bias add), so the
// results are theirs bit for bit whatever the grouping and the thread count.
#ifndef MEDTUNE_MODEL_WEIGHT_GROUP_H
#define MEDTUNE_MODEL_WEIGHT_GROUP_H

#include "model/weight.h"

// The most products one group takes (q, k and v).
#define WEIGHT_GROUP_MAX 3

// One product of a group: y[N, W->rows] = x[N, W->cols] W^T (+ b[W->rows] when b is non-NULL).
typedef struct {
    float *y;
    const weight_mat *W;  // any stored type but F32 (F32 goes to OpenBLAS)
    const float *b;
} weight_group_part;

// Runs the k (1..WEIGHT_GROUP_MAX) products of `parts`, whose matrices all have x's width,
// for N <= WEIGHT_GEMV_MAX_ROWS rows of x, on `threads` threads (1: the calling thread, no
// parallel region). int8: round x to int8 for the matrices whose type has an integer kernel
// (weight_gemv_int8's numbers), else fp32 activations (weight_gemv's). A failed allocation of
// the int8 buffer makes the whole group take fp32 activations, as weight_gemv_int8 does.
void weight_group_gemv(const weight_group_part *parts, int k, const float *x, int N, int int8,
                       int threads);

#endif
