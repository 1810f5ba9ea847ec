// Dot products of one stored weight row with a few fp32 vectors: the inner loop of decoding.
// Fused AVX2/FMA kernels read Q8_0, Q4_0, Q4_1 and Q4_K blocks directly (the weights are
// expanded in registers, never written out); every other type, and CPUs without AVX2/FMA,
// take the generic kernel (dequantize 256 values into a stack buffer, then dot). The fused
// kernels expand each weight with the arithmetic of formats/quant.c's dequantization (a
// multiply, then an add, never fused), so they multiply by exactly the dequantized weights;
// only the order of the sums differs from sgemm's.
// The kernel set is chosen once, at run time, so the build stays portable (x86-64-v2).
#ifndef MEDTUNE_MODEL_WEIGHT_KERNELS_H
#define MEDTUNE_MODEL_WEIGHT_KERNELS_H

#include <stdint.h>

// acc[n] = sum_c row[c] * x[n * cols + c] for n < N (N <= WEIGHT_GEMV_MAX_ROWS), where row
// holds `cols` values of ggml type `type`.
typedef void (*weight_row_dot_fn)(uint32_t type, float *acc, const uint8_t *row, const float *x,
                                  int64_t cols, int N);

weight_row_dot_fn weight_row_dot_kernel(uint32_t type);

// y[0..n) = the n values of ggml type `type` at row (whole blocks): formats/quant.c's
// quant_dequantize_row, with AVX2 versions for Q8_0, Q4_0, Q4_1 and Q4_K that give the same
// values bit for bit (the same multiply and add per value, in vector registers).
typedef void (*weight_dequant_fn)(uint32_t type, const uint8_t *row, float *y, int64_t n);
weight_dequant_fn weight_dequant_kernel(uint32_t type);
// "avx2+fma" when this CPU runs the fused kernels, else "scalar".
const char *weight_kernels_isa(void);

#endif
