// medtune's side of the architecture oracle tests (tests/arch/check_phi3_gpt2.py), which
// compare it with transformers + PEFT:
//   forward MODEL ADAPTER_DIR IN OUT   logits, mean loss and every LoRA gradient of the batch
//                                      (the gradients and loss with recompute must be the same
//                                      bits, or it fails)
//   decode MODEL ADAPTER_DIR IN OUT    the KV-cache decoder on row 0: a 5-token prefill,
//                                      then one token per step; "logits" [T, V] holds the
//                                      logits of each position when it was the last one
//   train MODEL ADAPTER_DIR IN STEPS LR OUT_ADAPTER OUT
//                                      STEPS AdamW steps on the batch, the adapter exported to
//                                      OUT_ADAPTER (PEFT), then the logits with it
// IN holds "tokens" and "targets" (I32 [B, T], target -1 = no loss). OUT receives "logits"
// [B*T, V], "loss" [1] and, for forward, "grad.<PEFT tensor name>" for every A and B.
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
#include "optim/adamw.h"
#include "tests/testlib.h"

typedef struct {
    int B, T;
    int32_t *tokens, *targets;
} batch_in;

static int32_t *read_i32(const st_file *f, const char *name, int *B, int *T) {
    const st_tensor *t = safetensors_find(f, name);
    if (!t || t->dtype != ST_I32 || t->n_dims != 2)
        test_fail("%s: %s: missing or not I32 [B, T]", f->path, name);
    *B = (int)t->shape[0];
    *T = (int)t->shape[1];
    int32_t *out = malloc(t->n_elements * sizeof(int32_t));
    if (!out) test_fail("out of memory");
    memcpy(out, t->data, t->n_elements * sizeof(int32_t));
    return out;
}

static batch_in batch_read(const char *path) {
    st_file f;
    if (safetensors_open(&f, path)) test_fail("%s", err_msg());
    batch_in b;
    int B2, T2;
    b.tokens = read_i32(&f, "tokens", &b.B, &b.T);
    b.targets = read_i32(&f, "targets", &B2, &T2);
    if (B2 != b.B || T2 != b.T) test_fail("%s: tokens and targets differ in shape", path);
    safetensors_close(&f);
    return b;
}

// The mean loss over the batch's targets; gradients of that mean in a->grads when grad.
static double loss_and_grads(const model *m, lora_adapter *a, const batch_in *in, int grad,
                             int recompute) {
    lm_plan p;
    if (lm_plan_init_recompute(&p, m, a, in->B, in->T, recompute))
        test_fail("plan: %s", err_msg());
    lm_batch b = {in->tokens, in->targets, NULL, NULL};
    int64_t n = 0;
    for (int i = 0; i < in->B * in->T; i++) n += in->targets[i] >= 0;
    if (n == 0) test_fail("the batch has no targets");
    memset(a->grads, 0, a->n_params * sizeof(float));
    int64_t counted = 0;
    double loss = lm_forward(&p, &b, grad, 1.0f / (float)n, &counted);
    if (grad) lm_backward(&p);
    lm_plan_free(&p);
    return loss / (double)n;
}

static float *logits_of(const model *m, const lora_adapter *a, const batch_in *in) {
    lm_plan p;
    if (lm_plan_init(&p, m, a, in->B, in->T)) test_fail("plan: %s", err_msg());
    float *out = malloc((size_t)in->B * in->T * m->cfg.vocab_size * sizeof(float));
    if (!out) test_fail("out of memory");
    lm_batch b = {in->tokens, in->targets, NULL, NULL};
    lm_logits(&p, &b, out);
    lm_plan_free(&p);
    return out;
}

static void write_out(const char *path, const model *m, const lora_adapter *a, const batch_in *in,
                      const float *logits, float loss, int with_grads) {
    int cap = 2 + (with_grads ? 2 * LORA_N_TARGETS * a->n_layers : 0), n = 0;
    st_write_tensor *t = calloc((size_t)cap, sizeof *t);
    char (*names)[200] = calloc((size_t)cap, sizeof *names);
    if (!t || !names) test_fail("out of memory");
    t[n++] = (st_write_tensor){"logits", ST_F32, 2, {(int64_t)in->B * in->T, m->cfg.vocab_size},
                               logits};
    t[n++] = (st_write_tensor){"loss", ST_F32, 1, {1}, &loss};
    for (int l = 0; with_grads && l < a->n_layers; l++)
        for (int k = 0; k < LORA_N_TARGETS; k++)
            for (int is_b = 0; is_b < 2 && lora_enabled(a, k); is_b++, n++) {
                char peft[180];
                lora_peft_tensor_name(a, peft, sizeof peft, l, k, is_b);
                snprintf(names[n], sizeof names[n], "grad.%s", peft);
                const lora_slot *s = &a->slots[k];
                t[n] = (st_write_tensor){names[n], ST_F32, 2,
                                         {is_b ? s->out : a->cfg.r, is_b ? a->cfg.r : s->in},
                                         is_b ? lora_dB(a, l, k) : lora_dA(a, l, k)};
            }
    if (safetensors_write(path, t, n, NULL, 0)) test_fail("%s", err_msg());
    free(t);
    free(names);
}

static void decode(const model *m, const lora_adapter *a, const batch_in *in, const char *out) {
    const int T = in->T, V = m->cfg.vocab_size, prefill = T < 5 ? T : 5;
    decoder d;
    if (decoder_init(&d, m, a, T)) test_fail("decoder: %s", err_msg());
    float *logits = malloc((size_t)T * V * sizeof(float));
    if (!logits) test_fail("out of memory");
    if (decoder_forward(&d, in->tokens, prefill, logits, 1)) test_fail("%s", err_msg());
    for (int t = prefill; t < T; t++)
        if (decoder_forward(&d, in->tokens + t, 1, logits + (int64_t)t * V, 0))
            test_fail("%s", err_msg());
    decoder_free(&d);
    st_write_tensor t = {"logits", ST_F32, 2, {T, V}, logits};
    if (safetensors_write(out, &t, 1, NULL, 0)) test_fail("%s", err_msg());
    free(logits);
}

int main(int argc, char **argv) {
    int train = argc == 9 && !strcmp(argv[1], "train");
    int dec = argc == 6 && !strcmp(argv[1], "decode");
    if (!train && !dec && !(argc == 6 && !strcmp(argv[1], "forward"))) {
        fprintf(stderr, "usage: %s forward|decode MODEL ADAPTER IN OUT | train MODEL ADAPTER IN "
                        "STEPS LR OUT_ADAPTER OUT\n", argv[0]);
        return 2;
    }
    model m;
    if (model_load(&m, argv[2])) test_fail("%s", err_msg());
    lora_adapter a;
    if (peft_adapter_load(argv[3], &m.cfg, &a)) test_fail("%s", err_msg());
    batch_in in = batch_read(argv[4]);
    if (dec) {
        decode(&m, &a, &in, argv[5]);
    } else if (!train) {
        double loss_rc = loss_and_grads(&m, &a, &in, 1, 1);
        float *grads_rc = malloc(a.n_params * sizeof(float));
        if (!grads_rc) test_fail("out of memory");
        memcpy(grads_rc, a.grads, a.n_params * sizeof(float));
        double loss = loss_and_grads(&m, &a, &in, 1, 0);
        if (loss_rc != loss || memcmp(grads_rc, a.grads, a.n_params * sizeof(float)))
            test_fail("%s: the loss or LoRA gradients with recompute differ from without", argv[2]);
        free(grads_rc);
        float *logits = logits_of(&m, &a, &in);
        write_out(argv[5], &m, &a, &in, logits, (float)loss, 1);
        free(logits);
    } else {
        adamw_config oc = {(float)atof(argv[6]), 0.9f, 0.999f, 1e-8f, 0.0f};
        adamw_state opt;
        if (adamw_init(&opt, &oc, a.n_params)) test_fail("%s", err_msg());
        for (int s = 0; s < atoi(argv[5]); s++) {
            loss_and_grads(&m, &a, &in, 1, 0);
            adamw_step(&opt, a.params, a.grads, oc.lr);
        }
        adamw_free(&opt);
        if (peft_adapter_write(argv[7], &a, argv[2])) test_fail("%s", err_msg());
        float loss = (float)loss_and_grads(&m, &a, &in, 0, 0);
        float *logits = logits_of(&m, &a, &in);
        write_out(argv[8], &m, &a, &in, logits, loss, 0);
        free(logits);
    }
    lora_adapter_free(&a);
    model_free(&m);
    free(in.tokens);
    free(in.targets);
    return 0;
}
