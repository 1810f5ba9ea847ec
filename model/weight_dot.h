// Integer dot products for decoding: a stored weight row against an activation row quantized
// to int8, the inner loop of weight_gemv. Multiplying fp32 activations by weights expanded to
// fp32 costs a conversion and a float multiply per weight; quantizing the activation row once
// per product and summing int8 x weight-quant products with AVX2 integer multiply-adds, scaled
// once per block, does the same work in a few integer instructions per 32 weights.
//
// Activation blocks follow the weight type's granularity:
//   - 32-element types (Q8_0, Q4_0, Q4_1): per 32 values a float scale d = max|x| / 127, the
//     int8 values q = round-to-nearest-even(x * (127 / max|x|)), and their sum;
//   - K-quants (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K): per 256 values one scale, the 256 int8 values
//     and the sums of each 16 (what the weights' per-16/per-32 mins and offsets multiply).
// Each activation then differs from x by at most d / 2, so |y - exact| <= sum over blocks of
// d / 2 * sum |w| (plus fp32 rounding of the block sums): docs/design.md section 6 and
// tests/test_weight_gemv.c. Only the decoder's few-row products use this; the training
// products (dequantized panels + sgemm) are unchanged.
#ifndef MEDTUNE_MODEL_WEIGHT_DOT_H
#define MEDTUNE_MODEL_WEIGHT_DOT_H

#include <stddef.h>
#include <stdint.h>

// Dot product of one stored row of `cols` values with one quantized activation row.
typedef float (*weight_dot_fn)(const uint8_t *row, const void *xq, int64_t cols);

// The integer kernel for weights of `type` on this CPU, or NULL when there is none (types
// without one, a CPU without AVX2/FMA, MEDTUNE_NO_AVX2 set): the caller then uses fp32.
weight_dot_fn weight_dot_kernel(uint32_t type);
// Values per activation scale for weights of `type` (32 or 256), or 0 without an integer
// kernel.
int weight_dot_xq_block(uint32_t type);
// Bytes of one activation row of `cols` values quantized for weights of `type`.
size_t weight_dot_xq_bytes(uint32_t type, int64_t cols);
// xq = x[0..cols) quantized for weights of `type` (which must have an integer kernel).
void weight_dot_quantize_x(uint32_t type, const float *x, void *xq, int64_t cols);

#endif
