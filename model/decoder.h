// The KV-cache decoder for text generation: the prompt is run once (prefill, in chunks of
// rows), then each new token is one forward step over a single position that reads the cached
// keys and values of every earlier position. The math is that of model/transformer.c (HF
// Llama/Qwen2 semantics, GQA, q/k/v biases, rope scaling); LoRA is applied on the fly
// (y = x W^T + scale * (x A^T) B^T), so the base weights stay shared and unmodified.
#ifndef MEDTUNE_MODEL_DECODER_H
#define MEDTUNE_MODEL_DECODER_H

#include <stddef.h>
#include <stdint.h>

#include "model/lora.h"
#include "model/model.h"

// Keys (after RoPE) and values of every layer for positions 0..n_past-1.
typedef struct {
    int n_ctx;   // capacity in positions
    int n_past;  // positions filled
    float *k;    // [L, n_ctx, KV*D]
    float *v;    // [L, n_ctx, KV*D]
} kv_cache;

// Rows of one forward call: a longer prompt is prefilled in chunks of this many tokens, which
// bounds the scratch memory (attention scores are [H, rows, n_ctx]). decoder_init_rows takes
// larger chunks (up to DECODER_ROWS_LIMIT): each chunk repacks every weight matrix inside
// sgemm, which costs a quarter of a 64-row prefill of a small model.
#define DECODER_MAX_ROWS 64
#define DECODER_ROWS_LIMIT 1024

typedef struct {
    const model *m;
    const lora_adapter *lora;  // NULL: the base model alone
    kv_cache cache;
    int max_rows;  // R: rows of one forward call
    // scratch for up to R rows
    float *x, *xn, *tmp;  // [R, C]
    float *q, *att;       // [RP, H*D]  (RP: R rounded up to a multiple of 16, decoder.c's
    float *k, *v;         // [RP, KV*D]  attention_prefill pads its rows)
    float *g, *u, *h;     // [R, F]
    float *lora_u;        // [R, r], NULL without LoRA
    float *scores;        // [H, R, n_ctx]
    float *rope_cos, *rope_sin;  // [n_ctx, D/2]
    float *rope_cos_local, *rope_sin_local;  // [n_ctx, D/2] gemma3's sliding layers, or NULL
    float *rstd_heads;    // [R * H] per-head norm scratch (qwen3, gemma3), or NULL
    // A causal prefill from an empty cache runs model/attention.c's tiles, as lm_plan does:
    float *lse;           // [H, RP]
    float *attn_scratch;  // attention_scratch_floats(1, RP, H, D, threads)
    int32_t *start;       // [RP] first key of each row
    float *head_rows;     // [8, V] logits of a chunk's last rows (decoder.c: head_last)
    // The cache and every buffer above are slices of this one allocation, each rounded up to
    // ARENA_ALIGN bytes (common/arena.h); arena_bytes is its exact size.
    void *arena;
    size_t arena_bytes;
    int threads;  // OpenMP threads for prefill and the large products of a step
    // 1: the few-row products on quantized weights round their inputs to int8
    // (weight_gemv_int8: faster, about 1% per product, docs/design.md section 6); generation
    // sets it. 0 (decoder_init's default): fp32 inputs, the training passes' numbers within
    // float rounding, what evaluation needs.
    int int8_products;
    // Token positions run through the transformer since init or reset: tests use it to prove
    // that a step runs one position, not the whole prefix again.
    int64_t n_positions;
    // longrope (phi3): the tokens of the cached positions [n_ctx], and whether the cache was
    // computed with the long factors. Like transformers' Phi-3 generation, crossing the
    // pretraining length recomputes the whole cache with the long factors.
    int32_t *tokens;  // [n_ctx] with longrope, else empty
    int rope_long;
} decoder;

// A decoder for contexts of up to n_ctx positions (1 <= n_ctx <= max_position_embeddings).
int decoder_init(decoder *d, const model *m, const lora_adapter *lora, int n_ctx);
// The same with chunks of max_rows rows (1 <= max_rows <= DECODER_ROWS_LIMIT) instead of
// DECODER_MAX_ROWS: for prefill-heavy use such as scoring prompts.
int decoder_init_rows(decoder *d, const model *m, const lora_adapter *lora, int n_ctx,
                      int max_rows);
void decoder_free(decoder *d);
// Empties the cache (the next forward starts at position 0).
void decoder_reset(decoder *d);
// Runs tokens[0..n) at positions n_past..n_past+n-1 and appends their keys and values to the
// cache. Writes the logits [V] of the last token, or of every token ([n, V]) with all_logits;
// logits may be NULL. Fails (nothing computed) when the tokens do not fit the context or an
// id is outside the vocabulary.
int decoder_forward(decoder *d, const int32_t *tokens, int n, float *logits, int all_logits);
// Runs several continuations of the cached prefix side by side in one pass (multiple-choice
// scoring: the choices of a question share its prompt). tokens holds the branches end to end,
// branch b being rows branch_start[b]..branch_start[b+1]-1 (branch_start has n_branches + 1
// entries, the last the row count, at most max_rows). A row attends to the cached
// prefix and to the earlier rows of its own branch, at position n_past + its index in the
// branch: each branch gets the logits it would get alone after the prefix. Writes the logits
// [rows, V] of every row and leaves the cache holding the prefix alone (n_past unchanged).
int decoder_forward_branches(decoder *d, const int32_t *tokens, const int *branch_start,
                             int n_branches, float *logits);
// Forgets the cached positions n_past.. (n_past <= the positions cached), so that another
// continuation of the first n_past positions can be run.
int decoder_rewind(decoder *d, int n_past);

#endif
