// Qwen3 and Gemma 3 GGUF metadata, with llama.cpp's conventions (llama-model.cpp): gemma3's
// local rope base is rope.freq_base_swa or 10000, its sliding layers follow
// attention.sliding_window_pattern (default 6: every sixth layer is global), and its attention
// scale is 1/sqrt(head_dim), 1/sqrt(hidden/heads) for the 62-layer 27B.
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/error.h"
#include "model/arch.h"

static int key_float(const gguf_file *f, const char *arch, const char *key, float def,
                     float *out) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    *out = def;
    if (!gguf_find(f, k)) return 0;
    double v;
    if (gguf_get_float(f, k, &v) != 0) return -1;
    *out = (float)v;
    return 0;
}

static int gemma3_sliding_layers(const gguf_file *f, model_config *c) {
    const char *k = "gemma3.attention.sliding_window_pattern";
    const gguf_kv *kv = gguf_find(f, k);
    int64_t pattern = 6;
    if (kv && kv->type == GGUF_TYPE_ARRAY) {  // one bool per layer, true = sliding
        gguf_type et;
        uint64_t n;
        if (gguf_get_arr(f, k, &kv, &et, &n) != 0) return -1;
        if (n != (uint64_t)c->n_layers)
            return err_set("%s: %s: %llu entries for %d layers", f->path, k,
                           (unsigned long long)n, c->n_layers);
        for (uint64_t l = 0; l < n; l++) {
            int64_t v;
            if (gguf_arr_int(f, kv, l, &v) != 0) return -1;
            c->sliding_layer[l] = v != 0;
        }
        return 0;
    }
    if (kv && gguf_get_int(f, k, &pattern) != 0) return -1;
    if (pattern <= 0) return err_set("%s: %s: must be positive", f->path, k);
    for (int l = 0; l < c->n_layers; l++) c->sliding_layer[l] = (l + 1) % pattern != 0;
    return 0;
}

int arch_gguf_config(const gguf_file *f, model_config *c) {
    if (c->arch != MODEL_ARCH_QWEN3 && c->arch != MODEL_ARCH_GEMMA3) return 0;
    const char *arch = c->arch == MODEL_ARCH_QWEN3 ? "qwen3" : "gemma3";
    c->qk_norm = 1;
    c->out_bias = gguf_find_tensor(f, "blk.0.attn_output.bias") != NULL;
    if (c->arch == MODEL_ARCH_QWEN3) return 0;
    c->post_norms = 1;
    c->gelu_mlp = 1;
    c->embed_scale = sqrtf((float)c->hidden_size);
    if (gguf_find(f, "gemma3.attn_logit_softcapping"))
        return err_set("%s: gemma3.attn_logit_softcapping: attention logit soft-capping is "
                       "unsupported", f->path);
    if (key_float(f, arch, "final_logit_softcapping", 0.0f, &c->final_softcap) != 0 ||
        key_float(f, arch, "rope.freq_base_swa", 10000.0f, &c->rope_local_theta) != 0)
        return -1;
    const float scale_dim =
        c->n_layers == 62 ? (float)c->hidden_size / (float)c->n_heads : (float)c->head_dim;
    if (scale_dim != (float)c->head_dim) c->q_scale = sqrtf((float)c->head_dim / scale_dim);
    int64_t window = 0;
    if (gguf_find(f, "gemma3.attention.sliding_window") &&
        gguf_get_int(f, "gemma3.attention.sliding_window", &window) != 0)
        return -1;
    if (window < 0 || window > 2147483647)
        return err_set("%s: gemma3.attention.sliding_window: %lld out of range", f->path,
                       (long long)window);
    c->sliding_window = (int)window;
    if (window == 0) return 0;
    if (c->n_layers > MODEL_MAX_LAYERS)
        return err_set("%s: gemma3.block_count: %d layers with sliding-window attention (at "
                       "most %d)", f->path, c->n_layers, MODEL_MAX_LAYERS);
    return gemma3_sliding_layers(f, c);
}
