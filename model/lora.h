// LoRA adapters on the seven projections, PEFT semantics:
//   y = x W^T (+ b) + scale * (dropout(x) A^T) B^T,  A [r, in], B [out, r],
//   scale = alpha / r, or alpha / sqrt(r) with rsLoRA.
// All A and B matrices live in one flat parameter buffer with a gradient buffer of the same
// layout, so the optimizer and checkpoints see a single vector.
#ifndef MEDTUNE_MODEL_LORA_H
#define MEDTUNE_MODEL_LORA_H

#include <stddef.h>
#include <stdint.h>

#include "model/model.h"

typedef enum {
    LORA_Q,
    LORA_K,
    LORA_V,
    LORA_O,
    LORA_GATE,
    LORA_UP,
    LORA_DOWN,
    // Fused projections, one A and one B over the concatenated outputs (PEFT on a fused
    // nn.Linear): phi3's qkv_proj and gpt2's c_attn ([q; k; v]), phi3's gate_up_proj ([gate; up]).
    LORA_QKV,
    LORA_GATE_UP,
    LORA_N_TARGETS
} lora_target;

// "q_proj", "k_proj", ..., "qkv_proj", "gate_up_proj": the Llama-family / phi3 module names.
extern const char *const LORA_TARGET_NAMES[LORA_N_TARGETS];
// "self_attn" or "mlp": the PEFT module path component of a target.
const char *lora_target_module(lora_target t);
// Index of a target name, or -1.
int lora_target_from_name(const char *name);
// Every target bit: PEFT's "all-linear", which lora_adapter_init narrows to the targets the
// model has (every linear layer but the output head).
#define LORA_ALL_LINEAR ((1u << LORA_N_TARGETS) - 1)
// The targets a module name selects in any architecture (0 if none): the Llama names, phi3's
// fused names, and gpt2's c_attn (LORA_QKV), c_fc (LORA_UP) and c_proj, which PEFT matches in
// both the attention (LORA_O) and the MLP (LORA_DOWN).
uint32_t lora_targets_from_name(const char *name);
// The targets (bit per lora_target) an architecture has: its own PEFT module names. llama,
// mistral, qwen2, qwen3 and gemma3 have the seven separate projections; phi3 qkv_proj o_proj
// gate_up_proj down_proj; gpt2 c_attn c_proj c_fc.
uint32_t lora_arch_targets(model_arch arch);
// `targets` with "all-linear" (LORA_ALL_LINEAR) replaced by the architecture's targets.
uint32_t lora_targets_resolve(uint32_t targets, model_arch arch);
// The model's own (PEFT) name of a target: "c_attn", "qkv_proj", "q_proj", ...
const char *lora_arch_target_name(model_arch arch, lora_target t);
// "q_proj k_proj ...": the valid names of an architecture, for error messages.
void lora_arch_target_list(model_arch arch, char *out, size_t n);

typedef struct {
    int r;
    float alpha;
    float dropout;
    int use_rslora;
    uint32_t targets;  // bit (1u << lora_target) per enabled projection
} lora_config;

typedef struct {
    int in, out;          // projection shape
    size_t a_off, b_off;  // offsets of A [r, in] and B [out, r] in params / grads
} lora_slot;

typedef struct {
    lora_config cfg;
    model_arch arch;  // names the PEFT tensors (lora_peft_tensor_name)
    float scale;
    int n_layers;
    lora_slot slots[LORA_N_TARGETS];  // shapes and per-layer strides are the same in every layer
    size_t layer_stride;              // floats per layer
    float *params;
    float *grads;
    size_t n_params;
} lora_adapter;

float lora_scale(const lora_config *cfg);
int lora_enabled(const lora_adapter *a, lora_target t);
// Allocates params (zero) and grads (zero) for `cfg` on the model's shapes. Targets the
// architecture lacks are refused, naming the valid ones; all bits set means "all-linear".
int lora_adapter_init(lora_adapter *a, const model_config *mc, const lora_config *cfg);
void lora_adapter_free(lora_adapter *a);
// PEFT initialisation: A ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming-uniform with a = sqrt(5)), B = 0.
void lora_adapter_init_peft(lora_adapter *a, uint64_t seed);

float *lora_A(const lora_adapter *a, int layer, lora_target t);
float *lora_B(const lora_adapter *a, int layer, lora_target t);
float *lora_dA(const lora_adapter *a, int layer, lora_target t);
float *lora_dB(const lora_adapter *a, int layer, lora_target t);
// The PEFT tensor name, e.g. "base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight".
void lora_tensor_name(char *out, size_t n, int layer, lora_target t, int is_b);
// The name PEFT gives the tensor on the adapter's architecture: lora_tensor_name for the
// Llama family and phi3, "base_model.model.transformer.h.3.attn.c_attn.lora_A.weight" for gpt2.
void lora_peft_tensor_name(const lora_adapter *a, char *out, size_t n, int layer, lora_target t,
                           int is_b);

// Dense projection on a stored weight W [out, in] (model/weight.h):
// y[N,out] = x[N,in] W^T (+ b[out] when b is non-NULL).
void linear_forward(float *y, const float *x, const weight_mat *W, const float *b, int N);
// dx[N,in] += dy[N,out] W[out,in]. W is frozen, so there is no weight gradient.
void linear_backward(float *dx, const float *dy, const weight_mat *W, int N);

// LoRA branch: u[N,r] = xd[N,in] A^T (saved for backward), y[N,out] += scale * u B^T.
void lora_forward(float *y, float *u, const float *xd, const float *A, const float *B,
                  float scale, int N, int in, int out, int r);
// dA += (scale * dy B)^T xd, dB += scale * dy^T u, dxd[N,in] += (scale * dy B) A.
// du is scratch [N, r].
void lora_backward(float *dxd, float *dA, float *dB, float *du, const float *dy, const float *xd,
                   const float *u, const float *A, const float *B, float scale, int N, int in,
                   int out, int r);

// Dropout on the LoRA input, reproducible from (seed, step, layer, target) without storage:
// xd = x * keep / (1 - p). Applied again in backward to route the gradient.
void lora_dropout_apply(float *out, const float *in, int64_t n, float p, uint64_t seed,
                        uint64_t stream);

#endif
