// A decoder-only transformer of the Llama family (llama, mistral, qwen2), Phi-3 or GPT-2,
// held in fp32.
// Weights follow Hugging Face layout and semantics: a projection W is [out, in] row-major
// and y = x W^T (+ b); Q/K rows are in HF order (llama.cpp's GGUF permutation undone at load).
#ifndef MEDTUNE_MODEL_MODEL_H
#define MEDTUNE_MODEL_MODEL_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    MODEL_ARCH_LLAMA,
    MODEL_ARCH_MISTRAL,
    MODEL_ARCH_QWEN2,
    MODEL_ARCH_PHI3,  // fused qkv_proj / gate_up_proj, partial rotary, longrope (model/arch_phi3.c)
    MODEL_ARCH_GPT2,  // LayerNorm, learned positions, GELU MLP, biases (model/arch_gpt2.c)
} model_arch;

typedef enum {
    ROPE_SCALING_NONE,
    ROPE_SCALING_LINEAR,  // positions divided by factor
    ROPE_SCALING_LLAMA3,  // frequency-dependent scaling of Llama 3.1/3.2
    ROPE_SCALING_LONGROPE,  // Phi-3 LongRoPE: per-frequency short/long factors, cos/sin scaled
} rope_scaling_type;

// LongRoPE factors per rotary frequency: rotary_dim / 2 of them (head_dim <= 512).
#define MODEL_MAX_ROPE_FACTORS 256

#define MODEL_MAX_EOS 8

typedef struct {
    model_arch arch;
    int hidden_size;        // C
    int intermediate_size;  // F
    int n_layers;           // L
    int n_heads;            // H
    int n_kv_heads;         // KV (GQA when KV < H)
    int head_dim;           // D (may differ from C / H)
    int vocab_size;         // V
    int max_position_embeddings;
    float rms_norm_eps;
    float rope_theta;
    rope_scaling_type rope_scaling;
    float rope_factor;
    float rope_low_freq_factor;   // llama3
    float rope_high_freq_factor;  // llama3
    int rope_original_max_position;  // llama3
    int tie_word_embeddings;
    int attention_bias;  // q/k/v biases (qwen2)
    int bos_token_id;    // -1 when absent
    int eos_token_ids[MODEL_MAX_EOS];
    int n_eos;
    // phi3: rotary dims of each head (partial_rotary_factor * head_dim); 0 means head_dim.
    int rotary_dim;
    // longrope: the short factors serve sequences up to rope_original_max_position, the long
    // ones longer sequences; cos and sin are multiplied by rope_attention_factor.
    float rope_short_factor[MODEL_MAX_ROPE_FACTORS];
    float rope_long_factor[MODEL_MAX_ROPE_FACTORS];
    float rope_attention_factor;
    // gpt2: LayerNorm with bias (eps in rms_norm_eps), learned positions for
    // max_position_embeddings rows, GELU-tanh MLP in w_up / w_down; scale_attn_by_inverse_layer_idx
    // divides the scores of layer l by l + 1.
    int attn_scale_inverse_layer;
} model_config;

typedef struct {
    float *attn_norm;  // [C]
    float *wq;         // [H*D, C]
    float *wk;         // [KV*D, C]
    float *wv;         // [KV*D, C]
    float *bq;         // [H*D] or NULL
    float *bk;         // [KV*D] or NULL
    float *bv;         // [KV*D] or NULL
    float *wo;         // [C, H*D]
    float *mlp_norm;   // [C]
    float *w_gate;     // [F, C]
    float *w_up;       // [F, C]
    float *w_down;     // [C, F]
    // gpt2 only (NULL otherwise): LayerNorm biases and the biases of the other projections.
    float *attn_norm_b;  // [C]
    float *bo;           // [C]
    float *mlp_norm_b;   // [C]
    float *b_up;         // [F]
    float *b_down;       // [C]
} layer_weights;

typedef struct {
    model_config cfg;
    float *embed;       // [V, C]
    float *final_norm;  // [C]
    float *lm_head;     // [V, C]; equals embed when tied
    layer_weights *layers;
    float *final_norm_b;  // [C] gpt2's ln_f bias, NULL otherwise
    float *pos_embed;     // [max_position_embeddings, C] gpt2's wpe, NULL otherwise
    float *arena;       // all weights, one allocation
    size_t n_params;    // distinct parameters (tied lm_head counted once)
    // Description of the source, for `medtune info`.
    char source_path[4096];
    char source_format[16];     // "safetensors" or "gguf"
    char source_dtypes[64];     // e.g. "F32", "BF16", "Q4_1+F32"
    char tokenizer_kind[32];    // e.g. "BPE (tokenizer.json)", "gpt2 (gguf)", "none"
    // SHA-256 of every weight tensor exactly as the source file stores it (model_hash_tensor),
    // set by the loaders. A model built in memory (tests) has none (has_stored_sha256 = 0).
    uint8_t stored_sha256[32];
    int has_stored_sha256;
} model;

// Loads a Hugging Face model directory or a .gguf file. On failure returns -1 with
// "<file>: <field>: <why>" in err_msg() and leaves `m` zeroed.
int model_load(model *m, const char *path);
void model_free(model *m);

// Allocates the arena and wires the pointers for `cfg` (weights uninitialised).
// Used by the loaders and by tests that build models in memory.
int model_alloc(model *m, const model_config *cfg);

// Hex SHA-256 identifying the base model, for resume checks: the config and every weight
// byte, as stored in its file(s) (stored_sha256), or the fp32 weights of a model built in
// memory. docs/design.md, section 7, gives the exact bytes.
void model_fingerprint(const model *m, char hex[65]);

// Checks a filled config for values the math cannot handle; "<what>: <why>" on failure.
int model_config_validate(const model_config *cfg, const char *file);

#endif
