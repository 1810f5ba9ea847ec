// test_decoder_step: the one-row decode step in one OpenMP region (model/decoder_step.h) gives
// the bits of the step through one region per product group (step_region 0), on random
// in-memory models whose matrices are quantized as GGUF files store them (Q4_K with Q6_K v and
// down and a Q8_0 o; and Q4_0 / Q4_1 / Q8_0 with 32-value blocks), for a llama (SwiGLU, GQA
// 8/2), a qwen2 (q/k/v biases) and a qwen3 (per-head q/k RMSNorm, o bias), with fp32 and int8
// activations, on 2 and 3 threads (3 threads: more threads than KV groups of one layer's
// attention split, and uneven row splits). Each decoder prefills the same prompt, then runs
// the same tokens one by one past position 256 (where the per-product path splits attention
// over threads); every step's logits must be equal byte for byte. The one-region step must
// actually run: decoder_step_fits is checked, and so is its refusal with an adapter-free model
// whose products are below the split threshold (step_region 1).
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/rng.h"
#include "formats/gguf.h"
#include "formats/quant.h"
#include "model/decoder.h"
#include "model/decoder_step.h"
#include "model/model.h"
#include "testlib.h"

enum { PROMPT = 250, STEPS = 12 };

static void fill(float *x, size_t n, float scale, float offset, rng_state *r) {
    for (size_t i = 0; i < n; i++) x[i] = offset + scale * (2.0f * rng_uniform(r) - 1.0f);
}

// Replaces fp32 matrix w by its quantization to `type` (bytes kept in *keep, freed by caller).
static void quantize_mat(weight_mat *w, uint32_t type, void **keep) {
    const size_t rb = quant_row_bytes(type, w->cols);
    uint8_t *q = malloc(rb * (size_t)w->rows);
    if (!q) test_fail("out of memory");
    for (int64_t r = 0; r < w->rows; r++)
        if (quant_quantize_row(type, (const float *)w->data + r * w->cols, q + r * rb, w->cols))
            test_fail("%s", err_msg());
    if (weight_mat_init(w, type, q, w->rows, w->cols, "test", "w")) test_fail("%s", err_msg());
    *keep = q;
}

typedef struct {
    const char *name;
    model_arch arch;
    int qk_norm, bias;
    uint32_t types[7];  // q, k, v, o, gate, up, down
} variant;

static void random_model(model *m, const variant *v, void **keep, rng_state *r) {
    model_config c = {0};
    c.arch = v->arch;
    c.hidden_size = 256;
    c.intermediate_size = 512;
    c.n_layers = 2;
    c.n_heads = 8;
    c.n_kv_heads = 2;
    c.head_dim = 32;
    c.vocab_size = 101;
    c.max_position_embeddings = 512;
    c.rms_norm_eps = 1e-6f;
    c.rope_theta = 10000.0f;
    c.attention_bias = v->bias && !v->qk_norm;
    c.qk_norm = v->qk_norm;
    c.out_bias = v->bias && v->qk_norm;
    c.bos_token_id = -1;
    if (model_config_validate(&c, "random") || model_alloc(m, &c)) test_fail("%s", err_msg());
    fill(m->arena, m->n_params, 0.15f, 0.0f, r);
    fill(m->final_norm, (size_t)c.hidden_size, 0.1f, 1.0f, r);
    for (int l = 0; l < c.n_layers; l++) {
        layer_weights *w = &m->layers[l];
        fill(w->attn_norm, (size_t)c.hidden_size, 0.1f, 1.0f, r);
        fill(w->mlp_norm, (size_t)c.hidden_size, 0.1f, 1.0f, r);
        weight_mat *mats[7] = {&w->wq, &w->wk, &w->wv, &w->wo, &w->w_gate, &w->w_up, &w->w_down};
        for (int i = 0; i < 7; i++) quantize_mat(mats[i], v->types[i], &keep[7 * l + i]);
    }
}

// Runs the prompt and STEPS single tokens through two decoders, one per step_region, and
// compares the logits of every call byte for byte. Returns the number of differing calls.
static int compare(const model *m, int int8, int threads, const char *name) {
    const int V = m->cfg.vocab_size;
    decoder d[2];
    omp_set_num_threads(threads);
    for (int i = 0; i < 2; i++) {
        if (decoder_init(&d[i], m, NULL, PROMPT + STEPS)) test_fail("%s", err_msg());
        d[i].int8_products = int8;
        d[i].step_region = i ? 2 : 0;
    }
    if (!decoder_step_fits(&d[1], 1 << 18) || decoder_step_fits(&d[0], 1 << 18))
        test_fail("%s: step_region 2 must fit and 0 must not", name);
    d[1].step_region = 1;
    if (decoder_step_fits(&d[1], 1 << 18))
        test_fail("%s: products of %d x %d weights are below the split threshold", name,
                  m->cfg.hidden_size, m->cfg.n_heads * m->cfg.head_dim);
    d[1].step_region = 2;
    int32_t tokens[PROMPT + STEPS];
    for (int i = 0; i < PROMPT + STEPS; i++) tokens[i] = (int32_t)((i * 37 + 11) % V);
    float *lg[2] = {malloc((size_t)V * sizeof(float)), malloc((size_t)V * sizeof(float))};
    int bad = 0;
    for (int call = 0; call <= STEPS; call++) {
        const int at = call ? PROMPT + call - 1 : 0, n = call ? 1 : PROMPT;
        for (int i = 0; i < 2; i++)
            if (decoder_forward(&d[i], tokens + at, n, lg[i], 0)) test_fail("%s", err_msg());
        if (memcmp(lg[0], lg[1], (size_t)V * sizeof(float))) {
            int j = 0;
            while (lg[0][j] == lg[1][j]) j++;
            if (bad++ < 3)
                printf("FAIL: %s int8=%d threads=%d call %d (position %d): logit %d %.9g in one "
                       "region, %.9g per product group\n",
                       name, int8, threads, call, at + n - 1, j, lg[1][j], lg[0][j]);
        }
    }
    if (d[0].n_positions != d[1].n_positions || d[1].n_positions != PROMPT + STEPS)
        test_fail("%s: %lld and %lld positions computed, %d expected", name,
                  (long long)d[0].n_positions, (long long)d[1].n_positions, PROMPT + STEPS);
    for (int i = 0; i < 2; i++) decoder_free(&d[i]), free(lg[i]);
    return bad;
}

int main(void) {
    const uint32_t K4 = GGML_TYPE_Q4_K, K6 = GGML_TYPE_Q6_K, Q8 = GGML_TYPE_Q8_0;
    const uint32_t Q40 = GGML_TYPE_Q4_0, Q41 = GGML_TYPE_Q4_1;
    const variant variants[] = {
        {"llama Q4_K_M-like", MODEL_ARCH_LLAMA, 0, 0, {K4, K4, K6, Q8, K4, K4, K6}},
        {"qwen2 biases, 32-value blocks", MODEL_ARCH_QWEN2, 0, 1, {Q40, Q41, Q8, Q40, Q41, Q40, Q8}},
        {"qwen3 q/k norm, o bias", MODEL_ARCH_QWEN3, 1, 1, {K4, Q8, K6, K4, Q41, K4, K6}},
    };
    rng_state r;
    rng_init(&r, 11);
    int bad = 0;
    for (size_t v = 0; v < sizeof variants / sizeof *variants; v++) {
        model m;
        void *keep[14] = {0};
        random_model(&m, &variants[v], keep, &r);
        for (int int8 = 0; int8 < 2; int8++)
            for (int threads = 2; threads <= 3; threads++)
                bad += compare(&m, int8, threads, variants[v].name);
        model_free(&m);
        for (int i = 0; i < 14; i++) free(keep[i]);
    }
    if (bad) test_fail("%d calls gave other logits in one region", bad);
    printf("OK: one-region steps equal the per-group steps bit for bit (3 models, fp32 and int8 "
           "inputs, 2 and 3 threads, %d steps past a %d-token prompt)\n", STEPS, PROMPT);
    return 0;
}
