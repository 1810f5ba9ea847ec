// Helper of the architecture oracle tests (driven by tests/arch/check_oracle.py):
//   run MODEL ADAPTER_DIR|- CASE.safetensors OUT.safetensors
// CASE holds "tokens" and "targets" (I32 [B, T], target -1 = no loss). OUT receives
//   logits          [B*T, V]  lm_logits (the training trunk)
//   decoder_logits  [B*T, V]  the KV-cache decoder, each row as a prefill of its first half
//                             then one token per step
//   loss            [1]       mean -log p(target) over the unmasked targets (lm_forward)
//   grad.<name>     the LoRA gradient of that mean loss for every PEFT tensor name (lm_backward),
//                   with an adapter; a plan with recompute must give the same bits (checked here)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoints/peft.h"
#include "common/error.h"
#include "formats/safetensors.h"
#include "model/decoder.h"
#include "model/lora.h"
#include "model/model.h"
#include "model/transformer.h"
#include "tests/testlib.h"

static int32_t *read_i32(const st_file *f, const char *name, int *B, int *T) {
    const st_tensor *t = safetensors_find(f, name);
    if (!t || t->dtype != ST_I32 || t->n_dims != 2)
        test_fail("%s: %s must be an I32 [B, T] tensor", f->path, name);
    *B = (int)t->shape[0];
    *T = (int)t->shape[1];
    int32_t *out = malloc(t->n_elements * sizeof(int32_t));
    memcpy(out, t->data, t->n_elements * sizeof(int32_t));
    return out;
}

// The KV-cache decoder over each row: half the row as one prefill, then a token per step.
static float *decoder_logits(const model *m, const lora_adapter *a, const int32_t *tokens, int B,
                             int T) {
    const int V = m->cfg.vocab_size;
    float *out = malloc((size_t)B * T * V * sizeof(float));
    decoder d;
    if (decoder_init(&d, m, a, T)) test_fail("decoder_init: %s", err_msg());
    for (int b = 0; b < B; b++) {
        decoder_reset(&d);
        const int32_t *row = tokens + (int64_t)b * T;
        float *lo = out + (int64_t)b * T * V;
        int half = T / 2;
        if (decoder_forward(&d, row, half, lo, 1)) test_fail("decoder: %s", err_msg());
        for (int t = half; t < T; t++)
            if (decoder_forward(&d, row + t, 1, lo + (int64_t)t * V, 0))
                test_fail("decoder: %s", err_msg());
    }
    decoder_free(&d);
    return out;
}

// recompute (one shared activation set, each layer run again in backward) must give the same
// loss and LoRA gradients bit for bit: q/k norms, post-norms, GeGLU and the sliding layers'
// own starts and rope tables are all refilled by the rerun. a->grads holds the plain plan's.
static void check_recompute(const model *m, lora_adapter *a, const lm_batch *batch, int B, int T,
                            int64_t count, double loss) {
    const size_t bytes = a->n_params * sizeof(float);
    float *want = malloc(bytes);
    memcpy(want, a->grads, bytes);
    lm_plan p;
    if (lm_plan_init_recompute(&p, m, a, B, T, 1)) test_fail("%s", err_msg());
    memset(a->grads, 0, bytes);
    int64_t n = 0;
    double got = lm_forward(&p, batch, 1, 1.0f / (float)count, &n) / (double)count;
    lm_backward(&p);
    if (got != loss) test_fail("recompute: loss %.9g, without recompute %.9g", got, loss);
    for (size_t i = 0; i < a->n_params; i++)
        if (memcmp(&a->grads[i], &want[i], sizeof(float)))
            test_fail("recompute: LoRA gradient %zu is %.9g, without recompute %.9g", i,
                      a->grads[i], want[i]);
    printf("recompute: loss and %zu LoRA gradients bit-identical to the plain plan\n",
           a->n_params);
    memcpy(a->grads, want, bytes);
    lm_plan_free(&p);
    free(want);
}

static int run(char **argv) {
    model m;
    if (model_load(&m, argv[0])) test_fail("%s", err_msg());
    lora_adapter a;
    const int with = strcmp(argv[1], "-") != 0;
    if (with && peft_adapter_load(argv[1], &m.cfg, &a)) test_fail("%s", err_msg());
    st_file cf;
    if (safetensors_open(&cf, argv[2])) test_fail("%s", err_msg());
    int B, T, B2, T2;
    int32_t *tokens = read_i32(&cf, "tokens", &B, &T);
    int32_t *targets = read_i32(&cf, "targets", &B2, &T2);
    if (B2 != B || T2 != T) test_fail("%s: tokens and targets differ in shape", argv[2]);
    safetensors_close(&cf);
    const int V = m.cfg.vocab_size;
    const int64_t N = (int64_t)B * T;

    lm_plan p;
    if (lm_plan_init(&p, &m, with ? &a : NULL, B, T)) test_fail("%s", err_msg());
    float *logits = malloc((size_t)N * V * sizeof(float));
    lm_batch batch = {tokens, targets, NULL, NULL};
    lm_logits(&p, &batch, logits);
    int64_t count = 0;
    lm_forward(&p, &batch, 0, 1.0f, &count);
    if (count == 0) test_fail("the case has no targets");
    int64_t n2 = 0;
    // The gradient of the mean loss, as transformers' loss is a mean over the targets.
    double loss = lm_forward(&p, &batch, 1, 1.0f / (float)count, &n2) / (double)count;
    if (with) {
        memset(a.grads, 0, a.n_params * sizeof(float));
        lm_backward(&p);
        check_recompute(&m, &a, &batch, B, T, count, loss);
    }
    float loss_f = (float)loss;
    float *dec = decoder_logits(&m, with ? &a : NULL, tokens, B, T);

    int n_out = 3 + (with ? (int)(2 * a.n_layers * LORA_N_TARGETS) : 0);
    st_write_tensor *w = calloc((size_t)n_out, sizeof *w);
    char (*names)[300] = calloc((size_t)n_out, sizeof *names);
    int k = 0;
    w[k++] = (st_write_tensor){"logits", ST_F32, 2, {N, V}, logits};
    w[k++] = (st_write_tensor){"decoder_logits", ST_F32, 2, {N, V}, dec};
    w[k++] = (st_write_tensor){"loss", ST_F32, 1, {1}, &loss_f};
    for (int l = 0; with && l < a.n_layers; l++)
        for (int t = 0; t < LORA_N_TARGETS; t++) {
            if (!lora_enabled(&a, t)) continue;
            for (int is_b = 0; is_b < 2; is_b++) {
                char base[256];
                lora_tensor_name(base, sizeof base, l, t, is_b);
                snprintf(names[k], sizeof names[k], "grad.%s", base);
                const lora_slot *s = &a.slots[t];
                w[k] = (st_write_tensor){names[k], ST_F32, 2,
                                         {is_b ? s->out : a.cfg.r, is_b ? a.cfg.r : s->in},
                                         is_b ? lora_dB(&a, l, t) : lora_dA(&a, l, t)};
                k++;
            }
        }
    if (safetensors_write(argv[3], w, k, NULL, 0)) test_fail("%s", err_msg());
    printf("wrote %d tensors: loss %.6f over %lld targets\n", k, loss, (long long)count);
    free(w);
    free(names);
    free(dec);
    free(logits);
    free(tokens);
    free(targets);
    lm_plan_free(&p);
    if (with) lora_adapter_free(&a);
    model_free(&m);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 6 && !strcmp(argv[1], "run")) return run(argv + 2);
    fprintf(stderr, "usage: test_arch run MODEL ADAPTER_DIR|- CASE.safetensors OUT.safetensors\n");
    return 2;
}
