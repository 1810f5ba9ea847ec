// A frozen weight matrix kept in the type its file stores it in (F32, F16, BF16, Q8_0, Q4_K,
// ...), and the products the model needs on it. Nothing here ever holds the whole matrix in
// fp32: the large products dequantize one panel of rows (or one tile) at a time into a
// per-thread buffer and hand it to sgemm; the few-row products of decoding read the blocks
// directly (weight_gemv, or weight_gemv_int8 on activations rounded to int8).
#ifndef MEDTUNE_MODEL_WEIGHT_H
#define MEDTUNE_MODEL_WEIGHT_H

#include <stddef.h>
#include <stdint.h>

#include "model/weight_dot.h"

// W [rows, cols] row-major in ggml type `type`: row r is the row_bytes bytes at
// data + r * row_bytes (whole quantization blocks; cols is a multiple of the block size).
typedef struct {
    uint32_t type;  // ggml_type id (formats/gguf.h)
    const void *data;
    int64_t rows, cols;
    size_t row_bytes;
} weight_mat;

// The most input rows weight_gemv takes (the decoder's steps and short prefills).
#define WEIGHT_GEMV_MAX_ROWS 8

// Fills w for `rows` x `cols` values of `type` at `data`. Fails with "<file>: <name>: <why>"
// when the type has no dequantization or cols is not a multiple of its block.
int weight_mat_init(weight_mat *w, uint32_t type, const void *data, int64_t rows, int64_t cols,
                    const char *file, const char *name);
// A matrix of fp32 values (models built in memory, fp32 files).
void weight_mat_f32(weight_mat *w, const float *data, int64_t rows, int64_t cols);
// Bytes of the stored matrix.
size_t weight_mat_bytes(const weight_mat *w);
// Bytes one row of `cols` values of `type` takes, or 0 when the type or the width is unsupported.
size_t weight_row_bytes(uint32_t type, int64_t cols);

// dst[n, cols] = rows r0..r0+n-1 of W as fp32 (embedding lookups, export, tests).
void weight_rows_to_f32(const weight_mat *w, int64_t r0, int64_t n, float *dst);
// dst[n, cols] = the rows ids[0..n) of W (an embedding lookup).
void weight_gather_f32(const weight_mat *w, const int32_t *ids, int64_t n, float *dst);

// y[N, rows] = x[N, cols] W^T (+ b[rows] when b is non-NULL): forward of a projection.
// F32 is one sgemm on the stored matrix; other types take panels of rows, each one sgemm over
// the full width, so every output sums in the order of one sgemm on the dequantized matrix
// (the result is that of the fp32 path bit for bit, with any N: training uses this).
void weight_matmul_forward(float *y, const float *x, const weight_mat *W, const float *b, int N);
// dx[N, cols] += dy[N, rows] W: the input gradient of a frozen projection. For stored types
// other than F32, tiles of columns are split over threads, each summing its tile's row
// panels in a fixed order, so the result does not depend on the thread count.
void weight_matmul_backward(float *dx, const float *dy, const weight_mat *W, int N);
// y[N, rows] = x[N, cols] W^T (+ b) for N <= WEIGHT_GEMV_MAX_ROWS on any stored type, with
// AVX2/FMA kernels chosen at run time when the CPU has them: the decoder's few-row products.
// Same weights as the panels, other order of the sums (a few float roundings apart).
void weight_gemv(float *y, const float *x, const weight_mat *W, const float *b, int N);
// The same, faster, with each x row rounded to int8 first where the CPU has an integer kernel
// for W's type (AVX2: Q8_0, Q4_0, Q4_1, Q2_K..Q6_K; model/weight_dot.h); otherwise exactly
// weight_gemv. Each product then differs from the exact one by at most the sum over
// activation blocks of max|x_block| / 254 * sum |w| in the block, plus fp32 rounding.
void weight_gemv_int8(float *y, const float *x, const weight_mat *W, const float *b, int N);

// The row loops of those products, for callers that split rows over threads themselves
// (model/weight_group.c), so their outputs are weight_gemv's and weight_gemv_int8's bit for bit.
// y[n, r] (row stride ldy) = x[n, :] . W[r, :] for rows r0..r1-1 and n < N <= 8 (fp32
// kernels), plus b[r] when b is non-NULL, or plus the y already there with `accumulate`.
void weight_gemv_rows(float *y, int64_t ldy, const float *x, const weight_mat *W, int64_t r0,
                      int64_t r1, const float *b, int N, int accumulate);
// The same with x_n the n-th of N activation rows quantized for the integer kernel `dot`
// (xq_bytes each), plus b[r] when b is non-NULL.
void weight_dot_rows(float *y, int64_t ldy, const uint8_t *xq, size_t xq_bytes,
                     const weight_mat *W, weight_dot_fn dot, int64_t r0, int64_t r1,
                     const float *b, int N);

// "avx2+fma" or "scalar": the kernels weight_gemv runs on this CPU (for logs and benchmarks).
const char *weight_gemv_isa(void);

#endif
