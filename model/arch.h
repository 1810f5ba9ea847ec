// What the architectures beyond Llama add to its layer, shared by the training passes
// (model/transformer.c), the KV-cache decoder (model/decoder.c) and the loaders:
// - Qwen3 and Gemma 3 (model/arch.c, model/arch_gguf.c): q/k norms, post norms, sliding
//   windows, embed_scale, final soft-capping; the reading of their config.json (model_type
//   qwen3, gemma3_text, gemma3), following transformers' modeling_qwen3.py and
//   modeling_gemma3.py.
// - Phi-3 (model/arch_phi3.c) and GPT-2 (model/arch_gpt2.c): fused qkv / gate_up matrices,
//   partial rotary and LongRoPE, LayerNorm, learned positions, Conv1D weights.
// docs/design.md, "Architectures", lists the math.
#ifndef MEDTUNE_MODEL_ARCH_H
#define MEDTUNE_MODEL_ARCH_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "formats/gguf.h"
#include "model/model.h"
#include "model/model_load.h"
#include "model/transformer.h"

// ---- Qwen3 / Gemma 3 ----

// 1 when layer l attends within the sliding window (gemma3 sliding_attention layers).
int arch_layer_sliding(const model_config *c, int l);
// 1 when layer l uses the local rope tables (rope_local_theta) rather than the global ones.
int arch_layer_local_rope(const model_config *c, int l);

// Rotary tables of the sliding layers: base rope_local_theta, no scaling (transformers'
// sliding_attention rope parameters are the default rope).
void arch_rope_local_init(float *cos, float *sin, int P, int D, const model_config *c);

// start_sw[n] = max(start[n], t - window + 1) for row n = b*T + t: transformers' sliding mask
// keeps key s for query t when s > t - window (masking_utils.sliding_window_overlay).
void arch_sliding_starts(int32_t *start_sw, const int32_t *start, int B, int T, int window);

// Fills the qwen3 / gemma3 fields of c from a config.json object (for gemma3, the object
// holding the text model: the root or its text_config). c->arch is set; the common fields
// (hidden_size, heads, head_dim, eps, bos/eos, tie_word_embeddings) are already read.
int arch_hf_config(model_config *c, const cJSON *root, const char *file);

// Gemma RMSNorm weights as held in memory: 1 + w (transformers: x * (1.0 + w.float())).
void arch_norm_plus_one(float *w, int64_t n);

// The whole config of a gemma3_text / gemma3 config.json (root is the file's object): the text
// model's object (root, or root.text_config for gemma3), with Gemma3TextConfig's defaults for
// the keys it leaves out (Hub configs of gemma3 list only what differs). Validates.
int arch_gemma3_config(model_config *c, const cJSON *root, const char *file);

// The k-th other name (k = 0, 1) a weight `name` ("model.layers.0...", "lm_head.weight") has in
// a multimodal gemma3 checkpoint: "model.language_model.layers.0..." (transformers >= 4.52)
// or "language_model.model.layers.0..." (the Hub files of Gemma 3 and MedGemma). 0 when
// there is none.
int arch_hf_name_variant(char *out, size_t size, const char *name, int k);

// The qwen3 / gemma3 fields of c from a GGUF file's `<arch>.*` metadata and tensor list, as
// llama.cpp reads them (c->arch and the common fields are set). Gemma norms are stored as
// 1 + w by llama.cpp's converter, which is how they are held in memory: no conversion.
int arch_gguf_config(const gguf_file *f, model_config *c);

// ---- Phi-3 / GPT-2 ----

// Weight slots (HF and GGUF names) of the two architectures, as weight_slots_list.
// A fused matrix (phi3's qkv_proj and gate_up_proj, gpt2's c_attn) is one slot whose `mat`
// is the first part's (wq, w_gate) with the rows of all parts; arch_fused_split then makes
// the parts views of its rows.
int phi3_weight_slots(model *m, weight_slot **out, int *n);
int gpt2_weight_slots(model *m, weight_slot **out, int *n);
// slot_set and slot_mat of model/model_load.c, for the slot lists above: a vector (or gpt2's
// fp32 position table) in dst, or a matrix (dst NULL) described by *mat.
void weight_slot_set(weight_slot *s, float *dst, int64_t rows, int64_t cols, const char *hf,
                     const char *gguf);
void weight_slot_mat(weight_slot *s, weight_mat *mat);
// weight_slot_set (and weight_slot_mat when mat is not NULL) for a tensor of layer `layer`:
// HF name "<hf_block>.<layer>.<hf>", GGUF name "blk.<layer>.<gguf>". Returns s.
weight_slot *weight_slot_layer(weight_slot *s, const char *hf_block, int layer, float *dst,
                               weight_mat *mat, int64_t rows, int64_t cols, const char *hf,
                               const char *gguf);
// The embedding, final norm and (untied) head slots under their llama-family names, from s[0];
// returns how many were written (2 or 3).
int weight_slots_outer(model *m, weight_slot *s);
// After a loader has set the fused matrices (wq spanning [q; k; v], w_gate spanning
// [gate; up]): wk, wv and w_up become views of their rows and wq, w_gate keep their own, the
// file's bytes staying where they are. Nothing for the other architectures.
void arch_fused_split(model *m);

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

// Defined in model/proj.c. A projection y[N,out] = x W^T (+ b) + its LoRA branch, and
// its backward (dx += dy W + LoRA input gradient, LoRA gradients accumulated; frozen_dx 0 skips
// dy W where nothing reads dx).
void proj_forward(lm_plan *p, float *y, const float *x, const weight_mat *W, const float *bias,
                  int l, lora_target t, int in, int out);
void proj_backward(lm_plan *p, float *dx, const float *dy, const float *x, const weight_mat *W,
                   int l, lora_target t, int in, int out, int frozen_dx);
// The LoRA branch of a fused target (LORA_QKV, LORA_GATE_UP) whose output is split over k
// buffers ys[i] of widths w[i] (B's rows in the same order): ys[i] += scale (x A^T) B_i^T.
// Nothing happens when the target is off.
void proj_fused_lora_forward(lm_plan *p, float *const *ys, const int *w, int k, const float *x,
                             int l, lora_target t, int in);
// dx[N,in] += its input gradient; A and B gradients accumulated from dys[i].
void proj_fused_lora_backward(lm_plan *p, float *dx, const float *const *dys, const int *w, int k,
                              const float *x, int l, lora_target t, int in);
// Separate targets ts[0..k) (k <= PROJ_GROUP_MAX) that read the same x [N, in]: q/k/v, or
// gate/up. As proj_forward / proj_backward on each (W_j [out_j, in], biases bs[j], bs may be
// NULL), with the A products of the enabled targets fused into one sgemm each way when LoRA
// dropout is off (lm_plan.lora_acat). Sums differ from the separate path by reassociation only.
#define PROJ_GROUP_MAX 3
void proj_group_forward(lm_plan *p, float *const *ys, const float *x,
                        const weight_mat *const *Ws, const float *const *bs, int l,
                        const lora_target *ts, int k, int in);
void proj_group_backward(lm_plan *p, float *dx, const float *const *dys, const float *x,
                         const weight_mat *const *Ws, int l, const lora_target *ts, int k, int in,
                         int frozen_dx);
// Their LoRA branches alone (outs[j]: the width of ys[j] / dys[j]): what proj_group_* run
// after the frozen products, and what bench_train profiles as the `lora` class.
void proj_group_lora_forward(lm_plan *p, float *const *ys, const int *outs, const float *x, int l,
                             const lora_target *ts, int k, int in);
void proj_group_lora_backward(lm_plan *p, float *dx, const float *const *dys, const int *outs,
                              const float *x, int l, const lora_target *ts, int k, int in);

#endif
