// Conversions between fp32 and the 16-bit float formats found in weight files
// (IEEE binary16 "F16" and bfloat16 "BF16"). fp16/bf16 -> fp32 is exact; fp32 -> 16-bit
// rounds to nearest even, keeps infinities and turns NaN into a quiet NaN.
#ifndef MEDTUNE_FORMATS_HALFCONV_H
#define MEDTUNE_FORMATS_HALFCONV_H

#include <stddef.h>
#include <stdint.h>

float fp16_to_f32(uint16_t h);
float bf16_to_f32(uint16_t h);
uint16_t f32_to_fp16(float f);
uint16_t f32_to_bf16(float f);

// Little-endian byte buffers of n values to fp32 (the buffers need no alignment).
void fp16_buf_to_f32(const uint8_t *src, size_t n, float *out);
void bf16_buf_to_f32(const uint8_t *src, size_t n, float *out);

#endif
