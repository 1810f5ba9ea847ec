// The fused LoRA A products of q/k/v and gate/up (model/proj.c, proj_group_*) against the
// separate products (lm_plan.lora_unfused, the path every target took before the fusion), on
// the same model, adapter and batch:
//   - the loss and the logits within float reassociation (1e-5 relative);
//   - every layer's and target's dA and dB within 1e-4 relative L2 (a wrong column block of
//     u_cat or du_cat, or a dA block added to the wrong target, is off by order 1);
//   - recompute gives the fused path's gradients bit for bit.
// Cases: the whole q/k/v and gate/up groups (llama GQA), a subset of each group (q and v, gate
// alone), k and v with both MLP targets on a qwen2 with biases, and qwen3's per-head q/k norms
// (whose backward holds dq_raw, dk_raw and dv at once for the fused product).
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/rng.h"
#include "model/lora.h"
#include "model/model.h"
#include "model/transformer.h"
#include "test_model.h"
#include "testlib.h"

#define T_BIT(t) (1u << (t))
#define ALL_SEVEN ((1u << LORA_QKV) - 1)

typedef struct {
    const char *name;
    model_arch arch;
    int C, F, L, H, KV, D, V;
    uint32_t targets;
    int r;
    int B, T;
} fuse_case;

static const fuse_case CASES[] = {
    {"llama GQA 6/2, all seven targets", MODEL_ARCH_LLAMA, 48, 80, 2, 6, 2, 8, 67, ALL_SEVEN, 4,
     2, 9},
    {"llama, q v (two of three fused) and gate alone (unfused)", MODEL_ARCH_LLAMA, 40, 72, 2, 4,
     4, 10, 53, T_BIT(LORA_Q) | T_BIT(LORA_V) | T_BIT(LORA_GATE), 3, 3, 5},
    {"qwen2 biases, k v gate up", MODEL_ARCH_QWEN2, 36, 60, 2, 6, 3, 6, 41,
     T_BIT(LORA_K) | T_BIT(LORA_V) | T_BIT(LORA_GATE) | T_BIT(LORA_UP), 5, 2, 7},
    {"qwen3 q/k norms, H*D wider than C, all seven targets", MODEL_ARCH_QWEN3, 32, 56, 2, 4, 2,
     12, 59, ALL_SEVEN, 4, 2, 8},
};

static void make_model(model *m, const fuse_case *k) {
    model_config c = {0};
    c.arch = k->arch;
    c.hidden_size = k->C;
    c.intermediate_size = k->F;
    c.n_layers = k->L;
    c.n_heads = k->H;
    c.n_kv_heads = k->KV;
    c.head_dim = k->D;
    c.vocab_size = k->V;
    c.max_position_embeddings = 128;
    c.rms_norm_eps = 1e-6f;
    c.rope_theta = 10000.0f;
    c.bos_token_id = -1;
    c.attention_bias = k->arch == MODEL_ARCH_QWEN2;
    c.qk_norm = k->arch == MODEL_ARCH_QWEN3;
    if (model_config_validate(&c, k->name) || model_alloc(m, &c))
        test_fail("%s: %s", k->name, err_msg());
    test_model_randomize(m, 11);
}

typedef struct {
    double loss;
    float *logits;  // [N, V]
    float *grads;   // [n_params]
} step_result;

// lm_logits, then a training step's loss and LoRA gradients, on a fresh plan.
static step_result run_step(const fuse_case *k, const model *m, lora_adapter *a,
                            const lm_batch *b, int unfused, int recompute) {
    lm_plan p;
    if (lm_plan_init_recompute(&p, m, a, k->B, k->T, recompute))
        test_fail("%s: %s", k->name, err_msg());
    p.lora_unfused = unfused;
    p.training = 1;
    const int64_t N = (int64_t)k->B * k->T;
    step_result s = {0};
    s.logits = malloc((size_t)N * k->V * sizeof(float));
    s.grads = malloc(a->n_params * sizeof(float));
    if (!s.logits || !s.grads) test_fail("out of memory");
    lm_logits(&p, b, s.logits);
    memset(a->grads, 0, a->n_params * sizeof(float));
    int64_t n_targets = 0;
    s.loss = lm_forward(&p, b, 1, 1.0f / (float)N, &n_targets);
    lm_backward(&p);
    memcpy(s.grads, a->grads, a->n_params * sizeof(float));
    lm_plan_free(&p);
    return s;
}

static void step_result_free(step_result *s) {
    free(s->logits);
    free(s->grads);
}

static double l2(const float *x, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return sqrt(s);
}

static void check_case(const fuse_case *k) {
    model m;
    make_model(&m, k);
    lora_adapter a;
    lora_config lc = {.r = k->r, .alpha = 2.0f * k->r, .targets = k->targets};
    if (lora_adapter_init(&a, &m.cfg, &lc)) test_fail("%s: %s", k->name, err_msg());
    rng_state r;
    rng_init(&r, 12);
    test_fill_uniform(a.params, a.n_params, 0.2f, 0.0f, &r);  // B != 0: every LoRA product matters
    const int N = k->B * k->T;
    int32_t *tokens = malloc((size_t)N * sizeof *tokens);
    int32_t *targets = malloc((size_t)N * sizeof *targets);
    for (int n = 0; n < N; n++) {
        tokens[n] = (int32_t)rng_below(&r, (uint64_t)k->V);
        targets[n] = n % 4 == 3 ? -1 : (int32_t)rng_below(&r, (uint64_t)k->V);
    }
    lm_batch b = {tokens, targets, NULL, NULL};
    step_result fused = run_step(k, &m, &a, &b, 0, 0);
    step_result sep = run_step(k, &m, &a, &b, 1, 0);
    step_result rec = run_step(k, &m, &a, &b, 0, 1);

    if (!isfinite(fused.loss) || fabs(fused.loss - sep.loss) > 1e-5 * fabs(sep.loss))
        test_fail("%s: loss fused %.9g, separate %.9g", k->name, fused.loss, sep.loss);
    const size_t n_logits = (size_t)N * k->V;
    const double dl = rel_l2_diff(fused.logits, sep.logits, n_logits);
    if (!(dl < 1e-5)) test_fail("%s: logits fused vs separate: relative L2 %.3g", k->name, dl);
    for (int l = 0; l < k->L; l++)
        for (int t = 0; t < LORA_N_TARGETS; t++) {
            if (!lora_enabled(&a, t)) continue;
            for (int is_b = 0; is_b < 2; is_b++) {
                const lora_slot *sl = &a.slots[t];
                const size_t off = (size_t)l * a.layer_stride + (is_b ? sl->b_off : sl->a_off);
                const size_t n = (size_t)k->r * (is_b ? sl->out : sl->in);
                const double norm = l2(sep.grads + off, n);
                const double d = rel_l2_diff(fused.grads + off, sep.grads + off, n);
                if (!(norm > 0) || !(d < 1e-4))
                    test_fail("%s: layer %d %s d%c: fused vs separate relative L2 %.3g (norm %g)",
                              k->name, l, LORA_TARGET_NAMES[t], is_b ? 'B' : 'A', d, norm);
            }
        }
    if (memcmp(rec.grads, fused.grads, a.n_params * sizeof(float)) || rec.loss != fused.loss)
        test_fail("%s: recompute changed the fused path's gradients or loss", k->name);
    printf("ok: %s (loss %.6f, logits rel %.2g)\n", k->name, fused.loss, dl);
    step_result_free(&fused);
    step_result_free(&sep);
    step_result_free(&rec);
    free(tokens);
    free(targets);
    lora_adapter_free(&a);
    model_free(&m);
}

int main(void) {
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) check_case(&CASES[i]);
    return 0;
}
