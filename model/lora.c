#include "model/lora.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/rng.h"
#include "model/model_load.h"

const char *const LORA_TARGET_NAMES[LORA_N_TARGETS] = {
    "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "qkv_proj",
    "gate_up_proj"};

const char *lora_target_module(lora_target t) {
    return t <= LORA_O || t == LORA_QKV ? "self_attn" : "mlp";
}

// gpt2's Conv1D modules: c_attn (fused q, k, v), c_proj (attention output and MLP down), c_fc.
static const char *gpt2_target_name(lora_target t) {
    switch (t) {
    case LORA_QKV: return "c_attn";
    case LORA_O:
    case LORA_DOWN: return "c_proj";
    case LORA_UP: return "c_fc";
    default: return NULL;
    }
}

uint32_t lora_targets_from_name(const char *name) {
    if (!strcmp(name, "c_attn")) return 1u << LORA_QKV;
    if (!strcmp(name, "c_fc")) return 1u << LORA_UP;
    if (!strcmp(name, "c_proj")) return 1u << LORA_O | 1u << LORA_DOWN;
    int t = lora_target_from_name(name);
    return t < 0 ? 0 : 1u << t;
}

uint32_t lora_arch_targets(model_arch arch) {
    switch (arch) {
    case MODEL_ARCH_PHI3: return 1u << LORA_QKV | 1u << LORA_O | 1u << LORA_GATE_UP | 1u << LORA_DOWN;
    case MODEL_ARCH_GPT2: return 1u << LORA_QKV | 1u << LORA_O | 1u << LORA_UP | 1u << LORA_DOWN;
    case MODEL_ARCH_LLAMA:
    case MODEL_ARCH_MISTRAL:
    case MODEL_ARCH_QWEN2:
    case MODEL_ARCH_QWEN3:
    case MODEL_ARCH_GEMMA3: return (1u << LORA_QKV) - 1;
    }
    return 0;
}

uint32_t lora_targets_resolve(uint32_t targets, model_arch arch) {
    return targets == LORA_ALL_LINEAR ? lora_arch_targets(arch) : targets;
}

const char *lora_arch_target_name(model_arch arch, lora_target t) {
    return arch == MODEL_ARCH_GPT2 ? gpt2_target_name(t) : LORA_TARGET_NAMES[t];
}

void lora_arch_target_list(model_arch arch, char *out, size_t n) {
    uint32_t valid = lora_arch_targets(arch);
    size_t at = 0;
    out[0] = '\0';
    for (int t = 0; t < LORA_N_TARGETS && at < n; t++) {
        // gpt2's c_proj stands for two targets: list it once.
        if (!((valid >> t) & 1u) || (arch == MODEL_ARCH_GPT2 && t == LORA_DOWN)) continue;
        int w = snprintf(out + at, n - at, "%s%s", at ? " " : "", lora_arch_target_name(arch, t));
        if (w < 0) break;
        at += (size_t)w;
    }
}

int lora_target_from_name(const char *name) {
    for (int t = 0; t < LORA_N_TARGETS; t++)
        if (!strcmp(name, LORA_TARGET_NAMES[t])) return t;
    return -1;
}

float lora_scale(const lora_config *cfg) {
    return cfg->use_rslora ? cfg->alpha / sqrtf((float)cfg->r) : cfg->alpha / (float)cfg->r;
}

int lora_enabled(const lora_adapter *a, lora_target t) { return (a->cfg.targets >> t) & 1u; }

int lora_adapter_init(lora_adapter *a, const model_config *mc, const lora_config *cfg) {
    memset(a, 0, sizeof *a);
    if (cfg->r <= 0) return err_set("lora.r: must be positive, got %d", cfg->r);
    if (!(cfg->dropout >= 0.0f && cfg->dropout < 1.0f))
        return err_set("lora.dropout: must be in [0, 1), got %g", cfg->dropout);
    char valid[128];
    lora_arch_target_list(mc->arch, valid, sizeof valid);
    uint32_t have = lora_arch_targets(mc->arch);
    a->cfg = *cfg;
    a->cfg.targets = lora_targets_resolve(cfg->targets, mc->arch);
    uint32_t tg = a->cfg.targets;
    // gpt2's c_proj is one name for both: o_proj or down_proj alone means another model's names.
    int gpt2_half = mc->arch == MODEL_ARCH_GPT2 && ((tg >> LORA_O) & 1u) != ((tg >> LORA_DOWN) & 1u);
    if (tg == 0 || (tg & ~have) || gpt2_half) {
        memset(a, 0, sizeof *a);
        return err_set("lora.targets: must name modules of this %s model (valid: %s)",
                       model_arch_name(mc->arch), valid);
    }
    a->arch = mc->arch;
    a->scale = lora_scale(cfg);
    a->n_layers = mc->n_layers;
    int C = mc->hidden_size, F = mc->intermediate_size;
    int QD = mc->n_heads * mc->head_dim, KD = mc->n_kv_heads * mc->head_dim;
    const int in[LORA_N_TARGETS] = {C, C, C, QD, C, C, F, C, C};
    const int out[LORA_N_TARGETS] = {QD, KD, KD, C, F, F, C, QD + 2 * KD, 2 * F};
    size_t off = 0;
    for (int t = 0; t < LORA_N_TARGETS; t++) {
        lora_slot *s = &a->slots[t];
        s->in = in[t];
        s->out = out[t];
        if (!lora_enabled(a, t)) continue;
        s->a_off = off, off += (size_t)cfg->r * in[t];
        s->b_off = off, off += (size_t)out[t] * cfg->r;
    }
    a->layer_stride = off;
    a->n_params = off * (size_t)mc->n_layers;
    a->params = calloc(a->n_params, sizeof(float));
    a->grads = calloc(a->n_params, sizeof(float));
    if (!a->params || !a->grads) {
        lora_adapter_free(a);
        return err_set("lora: out of memory for %zu parameters", a->n_params);
    }
    return 0;
}

void lora_adapter_free(lora_adapter *a) {
    free(a->params);
    free(a->grads);
    memset(a, 0, sizeof *a);
}

void lora_adapter_init_peft(lora_adapter *a, uint64_t seed) {
    rng_state rng;
    rng_init(&rng, seed);
    for (int l = 0; l < a->n_layers; l++)
        for (int t = 0; t < LORA_N_TARGETS; t++) {
            if (!lora_enabled(a, t)) continue;
            const lora_slot *s = &a->slots[t];
            float bound = 1.0f / sqrtf((float)s->in);
            float *A = lora_A(a, l, t);
            for (size_t i = 0; i < (size_t)a->cfg.r * s->in; i++)
                A[i] = (2.0f * rng_uniform(&rng) - 1.0f) * bound;
            memset(lora_B(a, l, t), 0, (size_t)s->out * a->cfg.r * sizeof(float));
        }
}

float *lora_A(const lora_adapter *a, int layer, lora_target t) {
    return a->params + layer * a->layer_stride + a->slots[t].a_off;
}
float *lora_B(const lora_adapter *a, int layer, lora_target t) {
    return a->params + layer * a->layer_stride + a->slots[t].b_off;
}
float *lora_dA(const lora_adapter *a, int layer, lora_target t) {
    return a->grads + layer * a->layer_stride + a->slots[t].a_off;
}
float *lora_dB(const lora_adapter *a, int layer, lora_target t) {
    return a->grads + layer * a->layer_stride + a->slots[t].b_off;
}

void lora_tensor_name(char *out, size_t n, int layer, lora_target t, int is_b) {
    snprintf(out, n, "base_model.model.model.layers.%d.%s.%s.lora_%c.weight", layer,
             lora_target_module(t), LORA_TARGET_NAMES[t], is_b ? 'B' : 'A');
}

void lora_peft_tensor_name(const lora_adapter *a, char *out, size_t n, int layer, lora_target t,
                           int is_b) {
    if (a->arch != MODEL_ARCH_GPT2) {
        lora_tensor_name(out, n, layer, t, is_b);
        return;
    }
    snprintf(out, n, "base_model.model.transformer.h.%d.%s.%s.lora_%c.weight", layer,
             t == LORA_QKV || t == LORA_O ? "attn" : "mlp", gpt2_target_name(t), is_b ? 'B' : 'A');
}

void linear_forward(float *y, const float *x, const weight_mat *W, const float *b, int N) {
    weight_matmul_forward(y, x, W, b, N);
}

void linear_backward(float *dx, const float *dy, const weight_mat *W, int N) {
    weight_matmul_backward(dx, dy, W, N);
}

void lora_forward(float *y, float *u, const float *xd, const float *A, const float *B,
                  float scale, int N, int in, int out, int r) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, r, in, 1.0f, xd, in, A, in, 0.0f, u,
                r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, out, r, scale, u, r, B, r, 1.0f, y,
                out);
}

void lora_backward(float *dxd, float *dA, float *dB, float *du, const float *dy, const float *xd,
                   const float *u, const float *A, const float *B, float scale, int N, int in,
                   int out, int r) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, r, out, scale, dy, out, B, r, 0.0f,
                du, r);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, r, N, scale, dy, out, u, r, 1.0f, dB,
                r);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, in, N, 1.0f, du, r, xd, in, 1.0f, dA,
                in);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, in, r, 1.0f, du, r, A, in, 1.0f, dxd,
                in);
}

void lora_dropout_apply(float *out, const float *in, int64_t n, float p, uint64_t seed,
                        uint64_t stream) {
    const float keep_scale = 1.0f / (1.0f - p);
    // One 64-bit hash gives two 32-bit uniforms; drop when u < p.
    const uint32_t threshold = (uint32_t)((double)p * 4294967296.0);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i += 2) {
        uint64_t h = rng_hash64(seed, stream, (uint64_t)i);
        uint32_t lo = (uint32_t)h, hi = (uint32_t)(h >> 32);
        out[i] = lo < threshold ? 0.0f : in[i] * keep_scale;
        if (i + 1 < n) out[i + 1] = hi < threshold ? 0.0f : in[i + 1] * keep_scale;
    }
}
