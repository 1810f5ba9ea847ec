// Few-row products that share their input, run as one: the decoder's q/k/v projections all
// read the normed row, gate and up read it too. Separately, each product would open its own
// OpenMP region (waking the other threads and waiting for them at its end) and round the same
// input to int8 again; here the output rows of every matrix of the group are one list of
// tasks split over the threads of a single region, and the input is rounded once per
// activation block size (32 or 256). Each output row is computed exactly as weight_gemv or
// weight_gemv_int8 computes it (same kernel, same input rounding, same bias add), so the
// results are theirs bit for bit whatever the grouping, the split and the thread count.
#ifndef MEDTUNE_MODEL_WEIGHT_GROUP_H
#define MEDTUNE_MODEL_WEIGHT_GROUP_H

#include <stddef.h>

#include "model/weight.h"
#include "model/weight_dot.h"
#include "model/weight_kernels.h"

// The most products one group takes (q, k and v).
#define WEIGHT_GROUP_MAX 3
// Output rows per task (a multiple of 8, so a task's rows start on a vector lane boundary).
#define WEIGHT_GROUP_TASK_ROWS 64

// One product of a group: y[N, W->rows] = x[N, W->cols] W^T (+ b[W->rows] when b is non-NULL).
typedef struct {
    float *y;
    const weight_mat *W;  // any stored type but F32 (F32 goes to OpenBLAS)
    const float *b;
} weight_group_part;

// A group ready to run: its parts, the input, and per part the integer kernel and quantized
// input (NULL: fp32 activations), the fp32 kernel, and where its tasks start in the list.
typedef struct {
    weight_group_part part[WEIGHT_GROUP_MAX];
    int k, N;
    const float *x;
    weight_dot_fn dot[WEIGHT_GROUP_MAX];
    const uint8_t *xq[WEIGHT_GROUP_MAX];
    size_t xq_bytes[WEIGHT_GROUP_MAX];
    weight_row_dot_fn row_dot[WEIGHT_GROUP_MAX];
    int64_t first_task[WEIGHT_GROUP_MAX + 1];  // first_task[k]: the number of tasks
} weight_group_plan;

// Bytes of scratch weight_group_prepare may use for N rows of `cols` values (both activation
// block sizes at once).
size_t weight_group_xq_bytes(int64_t cols, int N);
// Plans the k (1..WEIGHT_GROUP_MAX) products of `parts`, whose matrices all have x's width,
// for N <= WEIGHT_GEMV_MAX_ROWS rows of x. int8: round x into xq (weight_group_xq_bytes of
// scratch) for the matrices whose type has an integer kernel (weight_gemv_int8's numbers);
// 0, or xq NULL: fp32 activations (weight_gemv's).
void weight_group_prepare(weight_group_plan *g, const weight_group_part *parts, int k,
                          const float *x, int N, int int8, uint8_t *xq);
// Output rows r0..r1-1 of part i.
void weight_group_rows(const weight_group_plan *g, int i, int64_t r0, int64_t r1);
// Task t of the list: WEIGHT_GROUP_TASK_ROWS rows of one part (parts in order).
void weight_group_task(const weight_group_plan *g, int64_t t);

// The whole group on `threads` threads (1: the calling thread, no parallel region). A failed
// allocation of the int8 scratch makes the group take fp32 activations, as weight_gemv_int8
// does.
void weight_group_gemv(const weight_group_part *parts, int k, const float *x, int N, int int8,
                       int threads);

#endif
