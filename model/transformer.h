// The transformer forward and backward passes with LoRA on a frozen fp32 base.
// An lm_plan holds every buffer for one (batch, seq_len) shape, allocated once, so a training
// step allocates nothing. Backward computes gradients for LoRA A and B only: the base weights
// are frozen and have no gradient buffers.
#ifndef MEDTUNE_MODEL_TRANSFORMER_H
#define MEDTUNE_MODEL_TRANSFORMER_H

#include <stddef.h>
#include <stdint.h>

#include "model/lora.h"
#include "model/model.h"

// Rows of logits materialised at once: the [N, V] logits of a whole batch are never stored
// during training; each chunk is turned into its gradient and consumed immediately. Large
// chunks matter: every chunk re-packs the whole lm_head inside sgemm (twice).
#define LM_LOGITS_CHUNK_FLOATS (1 << 25)

typedef struct {
    const int32_t *tokens;     // [B*T] input ids
    const int32_t *targets;    // [B*T] next-token ids, -1 = no loss
    const int32_t *positions;  // [B*T] rotary positions, or NULL for 0..T-1 in every row
    const int32_t *doc_ids;    // [B*T] document index within the row (document attention:
                               // attention stays inside a document), or NULL for causal
} lm_batch;

// What backward needs from a layer's forward. The input norms' outputs and act(g) * u are not
// kept: backward recomputes them from x / xmid and g, u (a few element-wise passes, the same
// bits) into the plan's xn and h. With recompute, only x is kept per layer; every other field
// of every layer (the qwen3 / gemma3 ones too) points at one shared set that backward refills
// by running the layer again.
typedef struct {
    float *x;      // [N, C] layer input (residual stream)
    float *rstd1;  // [N]
    float *q;      // [N, H*D] after RoPE
    float *k;      // [N, KV*D] after RoPE
    float *v;      // [N, KV*D]
    float *lse;    // [B, H, T] log-sum-exp of each attention row (model/attention.h)
    float *att;    // [N, H*D] attention output (o_proj input)
    float *xmid;   // [N, C] residual after attention
    float *rstd2;  // [N]
    float *g;      // [N, F] gate projection (none for gpt2)
    float *u;      // [N, F] up projection
    float *lora_u[LORA_N_TARGETS];  // [N, r] LoRA A outputs, NULL for disabled targets
    // qwen3 / gemma3 (model/arch.h), NULL otherwise
    float *q_raw, *k_raw;    // [N, H*D], [N, KV*D] q and k before their per-head norm
    float *rstd_q, *rstd_k;  // [N*H], [N*KV]
    float *o_raw, *f_raw;    // [N, C] attention and MLP outputs before their post-norm
    float *rstd_o, *rstd_f;  // [N]
} layer_acts;

typedef struct {
    const model *m;
    const lora_adapter *lora;  // may be NULL: the base model alone
    int B, T, N;
    int recompute;      // keep only each layer's input; backward runs the layer again
    int max_threads;
    int chunk_rows;     // rows of logits per chunk: N split into the fewest equal chunks of at
                        // most LM_LOGITS_CHUNK_FLOATS / V rows (>= 1)
    layer_acts *acts;   // [L]
    float *x_out;       // [N, C] last layer output
    float *xnf;         // [N, C] final norm output
    float *rstdf;       // [N]
    float *dxnf;        // [N, C] gradient at the final norm output (filled by forward)
    float *xn;          // [N, C] the norm output a projection reads (forward and backward)
    float *h;           // [N, F] silu(g) * u or gelu(g) * u, down_proj's input (both passes)
    // scratch for backward, reused by every layer
    float *dres;          // [N, C] gradient of the residual stream
    float *dxn;           // [N, C] gradient at a norm output
    float *tmp;           // [N, C] projection output before the residual add (forward too)
    float *dq, *datt;     // [N, H*D]
    float *dk, *dv;       // [N, KV*D]
    float *dg, *du, *dh;  // [N, F] (dg none for gpt2)
    float *attn_scratch;  // [attention_scratch_floats(B, T, H, D, max_threads)]
    float *lora_du;       // [N, r] du of one LoRA target; [N, kr] when a group of k targets
                          // fuses its A products (their du side by side, and in forward their
                          // u side by side); NULL without LoRA
    float *lora_acat;     // [kr, C] the A matrices of a fused group, gathered (model/proj.c)
    float *lora_dacat;    // [kr, C] their gradient from one product, before it is added to each
    float *xd, *dxd;      // [N, widest input of an enabled LoRA target] dropout copies of a
                          // LoRA input, NULL unless lora->cfg.dropout > 0
    float *logits;        // [chunk_rows, V]
    float *rope_cos, *rope_sin;  // [T, D/2]
    int32_t *pos, *start;        // [N]
    float *rope_cos_local, *rope_sin_local;  // [T, D/2] rope of gemma3's sliding layers
    int32_t *start_sw;    // [N] first key of sliding-window layers (NULL without them)
    float *logits_capped;  // [chunk_rows, V] soft-capped logits, NULL without final_softcap
    // Every buffer above (not acts) is a slice of this one allocation, each rounded up to
    // ARENA_ALIGN bytes (common/arena.h); arena_bytes is its exact size.
    void *arena;
    size_t arena_bytes;
    // LoRA dropout: active when training with lora->cfg.dropout > 0; masks derive from
    // (dropout_seed, dropout_counter, layer, target), so set dropout_counter per micro-batch.
    int training;
    uint64_t dropout_seed;
    uint64_t dropout_counter;
    // Tests only: 1 runs every LoRA target's products on their own, as before the fusion of
    // q/k/v and gate/up (tests/test_lora_fuse.c compares both paths).
    int lora_unfused;
} lm_plan;

int lm_plan_init(lm_plan *p, const model *m, const lora_adapter *lora, int B, int T);
// The same with a choice of recompute: 0 (lm_plan_init) keeps every layer's activations, 1 only
// each layer's input: about L times less activation memory for one more layer forward per layer
// in backward, with the same bits.
int lm_plan_init_recompute(lm_plan *p, const model *m, const lora_adapter *lora, int B, int T,
                           int recompute);
void lm_plan_free(lm_plan *p);
// Bytes of the arena: every activation and scratch buffer of the plan (for memory reports).
size_t lm_plan_bytes(const lm_plan *p);
// The arena's size for that shape, without allocating it (memory plans before allocation);
// 0 when the arguments are invalid.
size_t lm_plan_size(const model *m, const lora_adapter *lora, int B, int T, int recompute);

// Forward pass over a batch of shape (p->B, p->T). Returns the sum of -log p(target) over
// unmasked targets and adds their count to *n_targets. With need_grad, also stores the gradient
// of (loss_sum * grad_scale) at the final norm output, ready for lm_backward.
double lm_forward(lm_plan *p, const lm_batch *b, int need_grad, float grad_scale,
                  int64_t *n_targets);
// Backward pass after lm_forward(need_grad=1): accumulates into p->lora->grads.
void lm_backward(lm_plan *p);
// Preference objectives (train/preference.c) need every sequence's log-probability before
// they know its gradient weight, so the head runs twice: lm_forward_logps keeps the trunk's
// activations (as the plan keeps them: with recompute, each layer's input) and gives logp[n] = log p(targets[n]) (0 where targets[n] < 0) for n in
// [0, B*T); lm_backward_weighted then recomputes the logits, takes the cross-entropy gradient
// weight[n] * (softmax - onehot(targets[n])) at every position with weight[n] != 0, and runs
// the backward pass into p->lora->grads. Both use crossentropy_forward_backward row by row.
void lm_forward_logps(lm_plan *p, const lm_batch *b, double *logp);
void lm_backward_weighted(lm_plan *p, const lm_batch *b, const float *weight);
// Forward pass writing all logits [B*T, V] (for evaluation, generation checks and tests).
void lm_logits(lm_plan *p, const lm_batch *b, float *logits);

#endif
