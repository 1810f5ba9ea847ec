// Pieces of the phi3 (model/arch_phi3.c) and gpt2 (model/arch_gpt2.c) architectures that the
// Llama-family code in model/transformer.c, model/decoder.c and the loaders call into.
#ifndef MEDTUNE_MODEL_ARCH_H
#define MEDTUNE_MODEL_ARCH_H

#include <stdint.h>

#include "model/model.h"
#include "model/model_load.h"
#include "model/transformer.h"

// Weight slots (HF and GGUF names) of the two architectures, as weight_slots_list.
int phi3_weight_slots(const model *m, weight_slot **out, int *n);
int gpt2_weight_slots(const model *m, weight_slot **out, int *n);
// slot_set of model/model_load.c, for the slot lists above.
void weight_slot_set(weight_slot *s, float *dst, int64_t rows, int64_t cols, const char *hf,
                     const char *gguf);

// Rotated dims of each head: rotary_dim, or head_dim when the rotation is full.
int rope_rotary_dim(const model_config *c);
// cos, sin [P, R/2] for positions 0..P-1 with R = rope_rotary_dim(c). longrope picks the long
// factors when seq_len (the largest position + 1 of the call) exceeds the pretraining length,
// as transformers' longrope_frequency_update, and scales both tables by its attention factor.
void rope_tables_build(float *cos, float *sin, int P, const model_config *c, int seq_len);
// x[N, nh*D] rotated in place on the first R dims of each head (pairs j and j + R/2, the rest
// passes through), as transformers' partial rotary; backward rotates by -angle.
void rope_partial_forward(float *x, const int32_t *pos, const float *cos, const float *sin, int N,
                          int nh, int D, int R);
void rope_partial_backward(float *dx, const int32_t *pos, const float *cos, const float *sin,
                           int N, int nh, int D, int R);

// out[N,C] = (inp - mean) * rstd * w + b,  rstd = 1/sqrt(var + eps) (biased variance)
void layernorm_forward(float *out, float *rstd, const float *inp, const float *w, const float *b,
                       int N, int C, float eps);
// dinp[N,C] += gradient through the normalisation of dout[N,C] (the mean is recomputed)
void layernorm_backward(float *dinp, const float *dout, const float *inp, const float *w,
                        const float *rstd, int N, int C);
// h = 0.5 u (1 + tanh(sqrt(2/pi) (u + 0.044715 u^3))) over n elements (gelu_new)
void gelu_tanh_forward(float *h, const float *u, int64_t n);
// du += dh * gelu'(u)
void gelu_tanh_backward(float *du, const float *dh, const float *u, int64_t n);
// x[N,C] += wpe[pos[n], :] (learned positions, frozen)
void pos_embedding_add(float *x, const int32_t *pos, const float *wpe, int N, int C);

// One gpt2 block on a training plan: the forward writes the next residual stream; the
// backward takes p->dres = d(loss)/d(block output) and leaves d(loss)/d(block input).
void gpt2_layer_forward(lm_plan *p, int l, float *x_next);
void gpt2_layer_backward(lm_plan *p, int l);

// Defined in model/transformer.c. A projection y[N,out] = x W^T (+ b) + its LoRA branch, and
// its backward (dx += dy W + LoRA input gradient, LoRA gradients accumulated).
void proj_forward(lm_plan *p, float *y, const float *x, const float *W, const float *bias, int l,
                  lora_target t, int in, int out);
void proj_backward(lm_plan *p, float *dx, const float *dy, const float *x, const float *W, int l,
                   lora_target t, int in, int out);
// The LoRA branch of a fused target (LORA_QKV, LORA_GATE_UP) whose output is split over k
// buffers ys[i] of widths w[i] (B's rows in the same order): ys[i] += scale (x A^T) B_i^T.
// Nothing happens when the target is off.
void proj_fused_lora_forward(lm_plan *p, float *const *ys, const int *w, int k, const float *x,
                             int l, lora_target t, int in);
// dx[N,in] += its input gradient; A and B gradients accumulated from dys[i].
void proj_fused_lora_backward(lm_plan *p, float *dx, const float *const *dys, const int *w, int k,
                              const float *x, int l, lora_target t, int in);

#endif
