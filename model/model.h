// A decoder-only transformer of the Llama family (llama, mistral, qwen2, qwen3, gemma3), Phi-3
// or GPT-2. The weight matrices stay in the type their file stores them in (model/weight.h:
// F32, F16, BF16, Q8_0, Q4_K, ...), read from a read-only mapping of the file; norms, biases
// and GPT-2's learned positions are fp32. Gemma's RMSNorm weights are held as the multiplier
// (1 + w), as llama.cpp's GGUF files store them, so every norm is out = w * x * rstd.
// Weights follow Hugging Face layout and semantics: a projection W is [out, in] row-major
// and y = x W^T (+ b); Q/K rows are in HF order (llama.cpp's GGUF permutation undone at load).
#ifndef MEDTUNE_MODEL_MODEL_H
#define MEDTUNE_MODEL_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "common/fileio.h"
#include "model/weight.h"

typedef enum {
    MODEL_ARCH_LLAMA,
    MODEL_ARCH_MISTRAL,
    MODEL_ARCH_QWEN2,
    MODEL_ARCH_QWEN3,   // q/k RMSNorm per head (model/arch.h)
    MODEL_ARCH_GEMMA3,  // gemma3_text, or the text part of gemma3 (model/arch.h)
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
// Layers a model may have when some of them use sliding-window attention (sliding_layer).
#define MODEL_MAX_LAYERS 256

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
    // Qwen3 / Gemma 3 (docs/design.md, "Architectures"). Zero for llama, mistral, qwen2.
    int qk_norm;          // RMSNorm over each head of q and k (weights [D]) before RoPE
    int post_norms;       // gemma3: RMSNorm of the attention and MLP outputs before the residual
    int gelu_mlp;         // gelu_pytorch_tanh GeGLU instead of SwiGLU
    int out_bias;         // o_proj bias (qwen3/gemma3 attention_bias)
    float embed_scale;    // embeddings multiplied by this (0: not scaled)
    float q_scale;        // q multiplied by this after RoPE: query_pre_attn_scalar^-1/2 * sqrt(D)
                          // turns attention's 1/sqrt(D) into gemma3's scale (0: not scaled)
    float final_softcap;  // logits = c * tanh(logits / c) (0: off)
    int sliding_window;   // keys within this many positions (0: no sliding layers)
    float rope_local_theta;  // rope base of sliding layers (0: same rope as full layers)
    int text_of_multimodal;  // read from the text_config of a multimodal checkpoint
    uint8_t sliding_layer[MODEL_MAX_LAYERS];  // 1: layer l uses the sliding window
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
    float *attn_norm;   // [C]
    weight_mat wq;      // [H*D, C]
    weight_mat wk;      // [KV*D, C]
    weight_mat wv;      // [KV*D, C]
    float *bq;          // [H*D] or NULL
    float *bk;          // [KV*D] or NULL
    float *bv;          // [KV*D] or NULL
    weight_mat wo;      // [C, H*D]
    float *mlp_norm;    // [C]
    weight_mat w_gate;  // [F, C]
    weight_mat w_up;    // [F, C]
    weight_mat w_down;  // [C, F]
    float *q_norm;      // [D] or NULL (qk_norm)
    float *k_norm;      // [D] or NULL
    float *post_attn_norm;  // [C] or NULL (post_norms)
    float *post_ffn_norm;   // [C] or NULL
    float *bo;              // [C] or NULL (out_bias)
    // gpt2 only (NULL otherwise): the LayerNorm biases and the biases of the MLP (bo above
    // is c_proj's bias).
    float *attn_norm_b;  // [C]
    float *mlp_norm_b;   // [C]
    float *b_up;         // [F]
    float *b_down;       // [C]
} layer_weights;

typedef struct {
    model_config cfg;
    weight_mat embed;    // [V, C]
    float *final_norm;   // [C]
    weight_mat lm_head;  // [V, C]; the same matrix as embed when tied
    layer_weights *layers;
    float *arena;       // fp32 tensors: norms and biases, and every matrix with model_alloc
    size_t arena_bytes;
    float *final_norm_b;  // [C] gpt2's ln_f bias, NULL otherwise
    float *pos_embed;     // [max_position_embeddings, C] gpt2's wpe (fp32), NULL otherwise
    size_t n_params;    // distinct parameters (tied lm_head counted once)
    // Where a loaded model's matrices live: read-only mappings of its files, kept for the
    // model's life (the page cache serves repeated runs), and buffers it owns (rows reordered
    // or converted at load). Bytes of the matrices in each, for `medtune info`.
    mapped_file *maps;
    int n_maps;
    void **owned;
    int n_owned;
    size_t weight_bytes_mapped, weight_bytes_owned;
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

// The type a Hugging Face base's matrices are held in (config key `base_dtype`): as stored
// (F32, F16 or BF16, mapped), or converted once at load into memory the model owns.
typedef enum { BASE_DTYPE_KEEP, BASE_DTYPE_BF16, BASE_DTYPE_Q8_0 } base_dtype;

// Loads a Hugging Face model directory or a .gguf file. On failure returns -1 with
// "<file>: <field>: <why>" in err_msg() and leaves `m` zeroed.
int model_load(model *m, const char *path);
// model_load with the matrices of a Hugging Face base converted to `dtype` (BASE_DTYPE_KEEP:
// as stored). A GGUF is always kept as stored: another dtype for one is an error.
int model_load_as(model *m, const char *path, base_dtype dtype);
void model_free(model *m);

// Allocates the arena and wires the pointers for `cfg` (weights uninitialised): every matrix
// is fp32 in the arena. Used by tests and tools that build models in memory.
int model_alloc(model *m, const model_config *cfg);
// The loaders' allocation: the arena holds the norms and biases only; the loader points each
// matrix at its stored bytes (a mapping kept with model_keep_map, or model_own memory).
int model_alloc_stored(model *m, const model_config *cfg);
// Moves a mapping into the model (closed by model_free); `mf` is left closed.
int model_keep_map(model *m, mapped_file *mf);
// `bytes` of memory freed by model_free, or NULL with an error.
void *model_own(model *m, size_t bytes);
// Bytes of all the weight matrices as held (tied lm_head once).
size_t model_weight_bytes(const model *m);
// Bytes the weights take in memory: the matrices as held plus the fp32 arena.
size_t model_memory_bytes(const model *m);

// Hex SHA-256 identifying the base model, for resume checks: the config and every weight
// byte, as stored in its file(s) (stored_sha256), or the fp32 weights of a model built in
// memory. docs/design.md, section 7, gives the exact bytes.
void model_fingerprint(const model *m, char hex[65]);

// Checks a filled config for values the math cannot handle; "<what>: <why>" on failure.
int model_config_validate(const model_config *cfg, const char *file);

#endif
