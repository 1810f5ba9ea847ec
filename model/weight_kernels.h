// The fp32 side of the stored-weight kernels: dequantizing rows (what the training products'
// panels are filled with) and dot products of stored rows with fp32 vectors (weight_gemv, and
// weight_gemv_int8's fallback for types without an integer kernel, model/weight_dot.h).
// Fused AVX2/FMA kernels read Q8_0, Q4_0, Q4_1 and Q4_K blocks directly (the weights are
// expanded in registers, never written out); the other types dequantize 256 values into a
// stack buffer, then dot. The fused kernels and the AVX2 row dequantization expand each
// weight with formats/quant.c's arithmetic (a multiply, then an add, never fused), so they
// use exactly the dequantized weights; only the order of the sums differs from sgemm's.
// CPUs without AVX2/FMA/F16C, and any CPU when the environment sets MEDTUNE_NO_AVX2 (to a
// value other than 0), take the scalar code. The kernel set is chosen at run time, so the
// build stays portable (x86-64-v2).
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
// 1 when this CPU has AVX2, FMA and F16C and MEDTUNE_NO_AVX2 is unset (or 0): the AVX2
// kernels run. Read once.
int weight_kernels_avx2(void);
// "avx2+fma" when the AVX2 kernels run, else "scalar".
const char *weight_kernels_isa(void);

#endif
