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

#endif
