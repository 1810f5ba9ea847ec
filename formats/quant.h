// ggml tensor types: the block table, dequantization of a row to fp32 and quantization of an
// fp32 row, with the block layouts llama.cpp's GGUF files use (docs/formats.md).
//
// A row of n elements is n / block_size consecutive blocks of block_bytes each; n must be a
// multiple of the type's block size. Dequantization follows ggml's arithmetic step for step
// (scale products first, then one multiply and one add, no fused multiply-add) so that it
// equals gguf-py's gguf.quants.dequantize bit for bit. The quantizers of the 32-element types
// reproduce ggml's reference rounding (so their bytes equal gguf-py's gguf.quants.quantize);
// the K-quant quantizers search each sub-block's scale and min by weighted least squares.
#ifndef MEDTUNE_FORMATS_QUANT_H
#define MEDTUNE_FORMATS_QUANT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

// ggml tensor type ids (fixed by the file format).
typedef enum {
    GGML_TYPE_F32 = 0,
    GGML_TYPE_F16 = 1,
    GGML_TYPE_Q4_0 = 2,
    GGML_TYPE_Q4_1 = 3,
    GGML_TYPE_Q5_0 = 6,
    GGML_TYPE_Q5_1 = 7,
    GGML_TYPE_Q8_0 = 8,
    GGML_TYPE_Q8_1 = 9,
    GGML_TYPE_Q2_K = 10,
    GGML_TYPE_Q3_K = 11,
    GGML_TYPE_Q4_K = 12,
    GGML_TYPE_Q5_K = 13,
    GGML_TYPE_Q6_K = 14,
    GGML_TYPE_Q8_K = 15,
    GGML_TYPE_BF16 = 30,
} ggml_type;

// Elements per K-quant super-block.
#define QUANT_QK_K 256

// "Q4_1", "F32", ...; "type N" for ids the format does not define.
const char *ggml_type_name(uint32_t type);
// True for ids the format defines (whether or not medtune can convert them).
int quant_type_known(uint32_t type);
// Elements per block and bytes per block; 0 for unknown ids.
uint32_t quant_block_size(uint32_t type);
uint32_t quant_block_bytes(uint32_t type);
// Bytes of a row of n elements (n a multiple of the block size); 0 for unknown ids.
size_t quant_row_bytes(uint32_t type, int64_t n);

// True for the types quant_dequantize_row handles: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1,
// Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K.
int quant_can_dequantize(uint32_t type);
// True for the types quant_quantize_row handles: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
// Q4_K, Q5_K, Q6_K.
int quant_can_quantize(uint32_t type);
// The supported type closest to an unsupported one (IQ2_XS -> Q2_K, Q8_K -> Q8_0, ...), for
// error messages.
const char *quant_nearest_supported(uint32_t type);

// dst[0..n) = the n elements of the blocks at src. An unsupported type or an n that is not a
// multiple of the block size is an error "tensor type X is not supported (nearest supported:
// Y)" / "N elements is not a multiple of the X block size B" (callers prefix file and tensor).
int quant_dequantize_row(uint32_t type, const void *src, float *dst, int64_t n);
// Writes quant_row_bytes(type, n) bytes at dst encoding src[0..n). Same errors.
int quant_quantize_row(uint32_t type, const float *src, void *dst, int64_t n);

// The packed sub-block scales of the K-quants, decoded a 32-bit word at a time (inline: the
// decoders of model/weight_kernels.c and model/weight_dot.c run them once per 256 weights).
// Q4_K/Q5_K scales[12]: the 6-bit scale and min of sub-block j (0..7); j < 4 are the low 6
// bits of bytes j and j+4, j >= 4 the nibbles of byte j+4 with the top 2 bits of bytes j-4
// (scale) and j (min) on top.
static inline void quant_k4_scales(const uint8_t *s, uint8_t sc[8], uint8_t m[8]) {
    uint32_t w[3], v[4];
    memcpy(w, s, 12);
    v[0] = w[0] & 0x3f3f3f3fu;
    v[1] = (w[2] & 0x0f0f0f0fu) | ((w[0] >> 6) & 0x03030303u) << 4;
    v[2] = w[1] & 0x3f3f3f3fu;
    v[3] = ((w[2] >> 4) & 0x0f0f0f0fu) | ((w[1] >> 6) & 0x03030303u) << 4;
    memcpy(sc, v, 8);
    memcpy(m, v + 2, 8);
}

// Q3_K scales[12]: the 6-bit scale (0..63, 32 is zero) of the 16-value group g (0..15): low
// nibble of byte g (g < 8) or high nibble of byte g-8, top 2 bits at bit 2 (g / 4) of byte
// 8 + g % 4.
static inline void quant_q3_k_scales(const uint8_t *s, uint8_t sc[16]) {
    uint32_t w[3], v[4];
    memcpy(w, s, 12);
    for (int k = 0; k < 4; k++)
        v[k] = ((w[k % 2] >> (4 * (k / 2))) & 0x0f0f0f0fu) | ((w[2] >> (2 * k)) & 0x03030303u) << 4;
    memcpy(sc, v, 16);
}

#endif
