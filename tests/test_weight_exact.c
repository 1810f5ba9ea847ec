// test_weight_exact STORED TWIN [BASE_DTYPE]: the model kept in its stored type (quantized,
// BF16, F16), or a Hugging Face F32 base converted at load with base_dtype BASE_DTYPE (bf16,
// q8_0), computes what the fp32 path computes on the same weights as gguf-py dequantizes them
// (the F32 TWIN, written by tests/weight/check_exact.py):
//   - loss and every LoRA gradient of a training step (dequantized panels + sgemm), for a
//     batch of many rows and of few: relative 1e-6, the loss bit-equal;
//   - greedy generation through the KV cache (the block kernels of few-row products): the
//     same tokens, and the logits after the prompt within 1e-5 relative; with the decoder's
//     int8_products (what `generate` runs), the same tokens and the logits within 5e-2 where
//     the kernels round the activations to int8 (model/weight_dot.h: about 1% per product
//     on these random models, compounded over the layers; each product's own bound is
//     test_weight_gemv's).
// It also checks that the stored model holds no fp32 copy of its matrices.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/rng.h"
#include "formats/quant.h"
#include "model/decoder.h"
#include "model/lora.h"
#include "model/transformer.h"
#include "model/weight_dot.h"
#include "testlib.h"

// Relative tolerance of the loss and of the gradient vector (L2): sums over up to a few
// thousand products taken in another order (backward tiles, block kernels) differ by a few
// float roundings, 1e-7 relative each.
#define TOL 1e-6
// The decoder's logits: the block kernels' sums run in their own order in every product;
// the integer kernels also round every activation to 8 bits.
#define TOL_DECODE 1e-5
#define TOL_DECODE_INT8 5e-2

static void lora_random(lora_adapter *a, const model_config *c, uint64_t seed) {
    lora_config lc = {.r = 4, .alpha = 8.0f, .targets = (1u << LORA_N_TARGETS) - 1};
    if (lora_adapter_init(a, c, &lc)) test_fail("%s", err_msg());
    rng_state r;
    rng_init(&r, seed);
    // B != 0 so that the gradient of A, and the LoRA input gradient, are not zero.
    for (size_t i = 0; i < a->n_params; i++) a->params[i] = (rng_uniform(&r) - 0.5f) * 0.2f;
}

static int worst_failures;

static void check_rel(const char *what, double got, double want, double rel) {
    printf("  %-34s %.3e relative%s\n", what, rel, got == want ? " (bit-equal)" : "");
    if (!(rel <= TOL)) {
        printf("FAIL: %s: %.9g vs %.9g (relative %.3e > %.0e)\n", what, got, want, rel, TOL);
        worst_failures++;
    }
}

// One training step (forward + backward) of B x T tokens on each model with the same adapter.
static void check_step(const model *mq, const model *mf, int B, int T) {
    const int N = B * T, V = mq->cfg.vocab_size;
    int32_t *tok = malloc((size_t)N * sizeof *tok), *tgt = malloc((size_t)N * sizeof *tgt);
    rng_state r;
    rng_init(&r, 11u + (uint64_t)N);
    for (int i = 0; i < N; i++) tok[i] = (int32_t)(rng_uniform(&r) * V) % V;
    for (int i = 0; i < N; i++) tgt[i] = i % 7 == 3 ? -1 : tok[(i + 1) % N];
    lm_batch b = {.tokens = tok, .targets = tgt};
    double loss[2];
    lora_adapter a[2];
    const model *ms[2] = {mq, mf};
    for (int k = 0; k < 2; k++) {
        lora_random(&a[k], &ms[k]->cfg, 5);
        lm_plan p;
        if (lm_plan_init(&p, ms[k], &a[k], B, T)) test_fail("%s", err_msg());
        int64_t n_targets = 0;
        loss[k] = lm_forward(&p, &b, 1, 1.0f / 64.0f, &n_targets);
        lm_backward(&p);
        lm_plan_free(&p);
    }
    char what[64];
    snprintf(what, sizeof what, "loss, %d x %d", B, T);
    check_rel(what, loss[0], loss[1], fabs(loss[0] - loss[1]) / fabs(loss[1]));
    snprintf(what, sizeof what, "LoRA gradients (L2), %d x %d", B, T);
    double rel = rel_l2_diff(a[0].grads, a[1].grads, a[0].n_params);
    int same = !memcmp(a[0].grads, a[1].grads, a[0].n_params * sizeof(float));
    check_rel(what, same ? 0 : 1, 0, rel);
    for (int k = 0; k < 2; k++) lora_adapter_free(&a[k]);
    free(tok), free(tgt);
}

// The panels' dequantization (AVX2 for some types) equals formats/quant.c's row by row, bit
// for bit, on every matrix of the model.
static void check_dequant(const model *m) {
    const weight_mat *mats[2 + 7 * 64];
    int n = 0;
    mats[n++] = &m->embed;
    mats[n++] = &m->lm_head;
    for (int l = 0; l < m->cfg.n_layers && l < 64; l++) {
        const layer_weights *w = &m->layers[l];
        const weight_mat *ws[7] = {&w->wq, &w->wk, &w->wv, &w->wo, &w->w_gate, &w->w_up,
                                   &w->w_down};
        for (int k = 0; k < 7; k++) mats[n++] = ws[k];
    }
    size_t rows = 0;
    for (int i = 0; i < n; i++) {
        const weight_mat *w = mats[i];
        float *got = malloc((size_t)w->cols * sizeof *got), *want = malloc((size_t)w->cols * sizeof *want);
        for (int64_t r = 0; r < w->rows; r++, rows++) {
            weight_rows_to_f32(w, r, 1, got);
            if (quant_dequantize_row(w->type, (const uint8_t *)w->data + r * w->row_bytes, want,
                                     w->cols))
                test_fail("%s", err_msg());
            if (memcmp(got, want, (size_t)w->cols * sizeof *got))
                test_fail("matrix %d row %lld: weight_rows_to_f32 differs from quant_dequantize_row",
                          i, (long long)r);
        }
        free(got), free(want);
    }
    printf("  dequantized rows (%zu) equal quant_dequantize_row's bit for bit\n", rows);
}

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

// Greedy decoding of `steps` tokens after a prompt, with a non-zero adapter; first_logits
// gets the logits after the prompt.
static void greedy(const model *m, const lora_adapter *a, int int8, int32_t *out, int steps,
                   float *first_logits) {
    const int V = m->cfg.vocab_size;
    int32_t prompt[5] = {1, 7, 42 % V, 3, 100 % V};
    decoder d;
    if (decoder_init(&d, m, a, 5 + steps)) test_fail("%s", err_msg());
    d.int8_products = int8;
    float *logits = malloc((size_t)V * sizeof *logits);
    if (decoder_forward(&d, prompt, 5, logits, 0)) test_fail("%s", err_msg());
    memcpy(first_logits, logits, (size_t)V * sizeof *logits);
    for (int k = 0; k < steps; k++) {
        out[k] = argmax(logits, V);
        if (decoder_forward(&d, &out[k], 1, logits, 0)) test_fail("%s", err_msg());
    }
    free(logits);
    decoder_free(&d);
}

// True when some matrix of m runs an integer kernel in the decoder.
static int int8_kernels(const model *m) {
    int any = weight_dot_xq_block(m->embed.type) || weight_dot_xq_block(m->lm_head.type);
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const layer_weights *w = &m->layers[l];
        const weight_mat *ws[7] = {&w->wq, &w->wk, &w->wv, &w->wo, &w->w_gate, &w->w_up,
                                   &w->w_down};
        for (int k = 0; k < 7; k++) any |= weight_dot_xq_block(ws[k]->type) != 0;
    }
    return any;
}

static void check_generation(const model *mq, const model *mf, int int8) {
    enum { STEPS = 24 };
    int32_t got[STEPS], want[STEPS];
    lora_adapter a[2];
    lora_random(&a[0], &mq->cfg, 9);
    lora_random(&a[1], &mf->cfg, 9);
    const int V = mq->cfg.vocab_size;
    float *lq = malloc((size_t)V * sizeof *lq), *lf = malloc((size_t)V * sizeof *lf);
    greedy(mq, &a[0], int8, got, STEPS, lq);
    greedy(mf, &a[1], 0, want, STEPS, lf);
    // The decoder's few-row products run the block kernels: same weights, sums in another
    // order than sgemm's, through every layer.
    const double rel = rel_l2_diff(lq, lf, (size_t)V);
    const double tol = int8 && int8_kernels(mq) ? TOL_DECODE_INT8 : TOL_DECODE;
    printf("  decoder logits after the prompt    %.3e relative (%s products)\n", rel,
           tol == TOL_DECODE ? "fp32" : "int8");
    if (!(rel <= tol)) {
        printf("FAIL: decoder logits differ by %.3e relative (> %.0e)\n", rel, tol);
        worst_failures++;
    }
    free(lq), free(lf);
    int same = !memcmp(got, want, sizeof got);
    printf("  greedy tokens (%d steps)           %s\n", STEPS, same ? "identical" : "DIFFER");
    if (!same) {
        for (int k = 0; k < STEPS; k++) printf("    %d: %d vs %d\n", k, got[k], want[k]);
        worst_failures++;
    }
    lora_adapter_free(&a[0]);
    lora_adapter_free(&a[1]);
}

int main(int argc, char **argv) {
    if (argc != 3 && argc != 4) test_fail("usage: test_weight_exact STORED TWIN [BASE_DTYPE]");
    base_dtype dt = BASE_DTYPE_KEEP;
    if (argc == 4 && !strcmp(argv[3], "bf16"))
        dt = BASE_DTYPE_BF16;
    else if (argc == 4 && !strcmp(argv[3], "q8_0"))
        dt = BASE_DTYPE_Q8_0;
    else if (argc == 4)
        test_fail("unknown base_dtype %s", argv[3]);
    model mq, mf;
    if (model_load_as(&mq, argv[1], dt) || model_load(&mf, argv[2])) test_fail("%s", err_msg());
    printf("%s (%s): %zu weight bytes (%zu mapped, %zu owned), gemv kernels %s\n", argv[1],
           mq.source_dtypes, model_weight_bytes(&mq), mq.weight_bytes_mapped,
           mq.weight_bytes_owned, weight_gemv_isa());
    // No fp32 copy: the arena holds norms and biases only, and the matrices take their
    // stored bytes, mapped or (Q/K rows put in HF order) owned.
    const size_t fp32_bytes = mf.n_params * sizeof(float);
    if (mq.weight_bytes_mapped + mq.weight_bytes_owned != model_weight_bytes(&mq))
        test_fail("mapped %zu + owned %zu bytes != %zu weight bytes", mq.weight_bytes_mapped,
                  mq.weight_bytes_owned, model_weight_bytes(&mq));
    if (model_weight_bytes(&mq) >= fp32_bytes / 2 + 1)
        test_fail("%zu weight bytes: not below half the fp32 size %zu", model_weight_bytes(&mq),
                  fp32_bytes);
    check_dequant(&mq);
    check_step(&mq, &mf, 2, 24);
    check_step(&mq, &mf, 1, 6);
    check_generation(&mq, &mf, 0);
    check_generation(&mq, &mf, 1);
    model_free(&mq);
    model_free(&mf);
    if (worst_failures) test_fail("%d checks failed", worst_failures);
    printf("OK\n");
    return 0;
}
