#include "export/gguf_adapter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "formats/gguf_write.h"

// ggml's GGML_QNT_VERSION, written by the converter into every file.
#define GGUF_QUANTIZATION_VERSION 2

// The fused targets keep their fused llama.cpp tensors: phi3's qkv_proj and gpt2's c_attn are
// attn_qkv, phi3's gate_up_proj is ffn_up (llama.cpp splits its output into gate and up).
static const char *const GGUF_TARGET_NAMES[LORA_N_TARGETS] = {
    "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down", "attn_qkv",
    "ffn_up"};

// llama.cpp's architecture name for a base model ("llama", "qwen2", "qwen3", "gemma3", "phi3"
// or "gpt2"); only `llama` permutes Q/K rows.
static const char *gguf_adapter_arch(const model_config *mc) {
    if (mc->arch == MODEL_ARCH_QWEN3) return "qwen3";
    if (mc->arch == MODEL_ARCH_GEMMA3) return "gemma3";
    // llama.cpp converts Mistral checkpoints as `llama` (same tensors, same Q/K permutation).
    switch (mc->arch) {
    case MODEL_ARCH_QWEN2: return "qwen2";
    case MODEL_ARCH_PHI3: return "phi3";
    case MODEL_ARCH_GPT2: return "gpt2";
    default: return "llama";
    }
}

// Per head of head_dim rows: HF row a*D/2 + j -> GGUF row 2*j + a (the inverse of
// qk_rows_unpermute). src and dst are [n_heads * head_dim, cols] and must not overlap.
static void qk_rows_permute(float *dst, const float *src, int n_heads, int head_dim, int cols) {
    int half = head_dim / 2;
    for (int h = 0; h < n_heads; h++)
        for (int a = 0; a < 2; a++)
            for (int j = 0; j < half; j++) {
                size_t hf_row = (size_t)h * head_dim + (size_t)a * half + j;
                size_t gg_row = (size_t)h * head_dim + 2 * (size_t)j + a;
                memcpy(dst + gg_row * cols, src + hf_row * cols, (size_t)cols * sizeof(float));
            }
}

int gguf_adapter_write(const char *path, const lora_adapter *a, const model_config *mc,
                       const char *name) {
    const char *arch = gguf_adapter_arch(mc);
    int permute = !strcmp(arch, "llama");
    gguf_writer w;
    gguf_writer_init(&w);
    gguf_writer_add_str(&w, "general.architecture", arch);
    gguf_writer_add_str(&w, "general.type", "adapter");
    gguf_writer_add_str(&w, "adapter.type", "lora");
    gguf_writer_add_str(&w, "general.name", name);
    // llama.cpp scales by alpha / rank (rank = lora_a's ne[1]).
    gguf_writer_add_f32(&w, "adapter.lora.alpha", a->scale * (float)a->cfg.r);
    gguf_writer_add_u32(&w, "general.quantization_version", GGUF_QUANTIZATION_VERSION);

    // Permuted copies of the Q/K B matrices, all in one buffer that outlives the write.
    size_t perm_floats = 0;
    if (permute)
        for (int t = LORA_Q; t <= LORA_K; t++)
            if (lora_enabled(a, t))
                perm_floats += (size_t)a->slots[t].out * a->cfg.r * (size_t)a->n_layers;
    float *perm = perm_floats ? malloc(perm_floats * sizeof(float)) : NULL;
    if (perm_floats && !perm) {
        gguf_writer_free(&w);
        return err_set("%s: out of memory", path);
    }
    float *next = perm;
    int rc = 0;
    for (int l = 0; l < a->n_layers && !rc; l++)
        for (int t = 0; t < LORA_N_TARGETS && !rc; t++) {
            if (!lora_enabled(a, t)) continue;
            const lora_slot *s = &a->slots[t];
            int r = a->cfg.r;
            const float *B = lora_B(a, l, t);
            if (permute && (t == LORA_Q || t == LORA_K)) {
                int heads = t == LORA_Q ? mc->n_heads : mc->n_kv_heads;
                qk_rows_permute(next, B, heads, mc->head_dim, r);
                B = next;
                next += (size_t)s->out * r;
            }
            char tname[96];
            const int64_t ne_a[2] = {s->in, r}, ne_b[2] = {r, s->out};
            snprintf(tname, sizeof tname, "blk.%d.%s.weight.lora_a", l, GGUF_TARGET_NAMES[t]);
            rc = gguf_writer_add_tensor(&w, tname, 2, ne_a, GGML_TYPE_F32, lora_A(a, l, t));
            snprintf(tname, sizeof tname, "blk.%d.%s.weight.lora_b", l, GGUF_TARGET_NAMES[t]);
            if (!rc) rc = gguf_writer_add_tensor(&w, tname, 2, ne_b, GGML_TYPE_F32, B);
        }
    if (rc) err_prefix("%s", path);
    else rc = gguf_writer_write(&w, path);
    gguf_writer_free(&w);
    free(perm);
    return rc;
}
