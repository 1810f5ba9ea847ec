// Compares medtune's forward, backward and AdamW steps with the PyTorch twin's debug state
// (tests/twin/twin.py): logits and loss within 1e-4 absolute, every LoRA gradient within 1e-3
// relative, the losses of the AdamW steps within 1e-4. The gradient and the AdamW steps run
// again with activation recompute: losses, gradients and the adapter must be the same bits.
// usage: test_parity MODEL DEBUG.safetensors
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "formats/safetensors.h"
#include "optim/adamw.h"
#include "tests/testlib.h"
#include "model/lora.h"
#include "model/model.h"
#include "model/transformer.h"

#define TOL_LOGITS 1e-4
#define TOL_LOSS 1e-4
#define TOL_GRAD_REL 1e-3

static const st_tensor *need(const st_file *f, const char *name) {
    const st_tensor *t = safetensors_find(f, name);
    if (!t) test_fail("%s: tensor %s missing", f->path, name);
    return t;
}

static float *read_f32(const st_file *f, const char *name, size_t expect_n) {
    const st_tensor *t = need(f, name);
    if (expect_n && t->n_elements != expect_n)
        test_fail("%s: %s has %zu elements, expected %zu", f->path, name, t->n_elements, expect_n);
    float *out = malloc(t->n_elements * sizeof(float) + 1);
    if (st_tensor_to_f32(f, t, out) != 0) test_fail("%s", err_msg());
    return out;
}

static int32_t *read_i32(const st_file *f, const char *name, size_t n) {
    const st_tensor *t = need(f, name);
    if (t->dtype != ST_I32 || t->n_elements != n)
        test_fail("%s: %s must be I32 with %zu elements", f->path, name, n);
    int32_t *out = malloc(n * sizeof(int32_t));
    memcpy(out, t->data, n * sizeof(int32_t));
    return out;
}

static double json_num(const cJSON *obj, const char *key, double fallback) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNumber(it) ? it->valuedouble : fallback;
}

// Loads "init." or "final." adapter tensors into params, or compares grads ("grad.").
static void adapter_tensors(const st_file *f, const lora_adapter *a, const char *prefix,
                            float *dst) {
    for (int l = 0; l < a->n_layers; l++)
        for (int t = 0; t < LORA_N_TARGETS; t++) {
            if (!lora_enabled(a, t)) continue;
            for (int is_b = 0; is_b < 2; is_b++) {
                char name[256], full[300];
                lora_tensor_name(name, sizeof name, l, t, is_b);
                snprintf(full, sizeof full, "%s%s", prefix, name);
                size_t n = (size_t)a->cfg.r * (is_b ? a->slots[t].out : a->slots[t].in);
                size_t off = l * a->layer_stride + (is_b ? a->slots[t].b_off : a->slots[t].a_off);
                float *v = read_f32(f, full, n);
                memcpy(dst + off, v, n * sizeof(float));
                free(v);
            }
        }
}

// Worst relative difference over all LoRA tensors of `got` against `ref` (same layout).
static double worst_tensor_rel(const lora_adapter *a, const float *got, const float *ref,
                               char *worst_name, size_t wn) {
    double worst = 0;
    for (int l = 0; l < a->n_layers; l++)
        for (int t = 0; t < LORA_N_TARGETS; t++) {
            if (!lora_enabled(a, t)) continue;
            for (int is_b = 0; is_b < 2; is_b++) {
                size_t n = (size_t)a->cfg.r * (is_b ? a->slots[t].out : a->slots[t].in);
                size_t off = l * a->layer_stride + (is_b ? a->slots[t].b_off : a->slots[t].a_off);
                double d = rel_l2_diff(got + off, ref + off, n);
                if (d > worst || d != d) {
                    worst = d;
                    lora_tensor_name(worst_name, wn, l, t, is_b);
                }
            }
        }
    return worst;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: test_parity MODEL DEBUG.safetensors\n");
        return 2;
    }
    model m;
    if (model_load(&m, argv[1]) != 0) test_fail("%s", err_msg());
    st_file f;
    if (safetensors_open(&f, argv[2]) != 0) test_fail("%s", err_msg());
    const char *case_json = safetensors_metadata(&f, "case");
    cJSON *cs = case_json ? cJSON_Parse(case_json) : NULL;
    if (!cs) test_fail("%s: metadata 'case' missing or not JSON", argv[2]);
    const cJSON *lj = cJSON_GetObjectItemCaseSensitive(cs, "lora");
    const cJSON *aj = cJSON_GetObjectItemCaseSensitive(cs, "adam");
    lora_config lc = {.r = (int)json_num(lj, "r", 0), .alpha = (float)json_num(lj, "alpha", 0),
                      .use_rslora = cJSON_IsTrue(cJSON_GetObjectItem(lj, "use_rslora"))};
    const cJSON *tj;
    cJSON_ArrayForEach(tj, cJSON_GetObjectItemCaseSensitive(lj, "targets")) {
        int t = cJSON_IsString(tj) ? lora_target_from_name(tj->valuestring) : -1;
        if (t < 0) test_fail("case: unknown LoRA target");
        lc.targets |= 1u << t;
    }

    const st_tensor *tok = need(&f, "tokens");
    if (tok->n_dims != 2) test_fail("tokens must be [B, T]");
    int B = (int)tok->shape[0], T = (int)tok->shape[1], N = B * T, V = m.cfg.vocab_size;
    int32_t *tokens = read_i32(&f, "tokens", N), *targets = read_i32(&f, "targets", N);
    int32_t *positions = read_i32(&f, "positions", N), *doc_ids = read_i32(&f, "doc_ids", N);
    lm_batch batch = {tokens, targets, positions, doc_ids};

    lora_adapter a;
    lm_plan plan;
    if (lora_adapter_init(&a, &m.cfg, &lc) != 0 || lm_plan_init(&plan, &m, &a, B, T) != 0)
        test_fail("%s", err_msg());
    adapter_tensors(&f, &a, "init.", a.params);
    printf("parity %s: B=%d T=%d V=%d r=%d scale=%g, %zu LoRA parameters\n", argv[2], B, T, V,
           lc.r, a.scale, a.n_params);
    int failed = 0;

    float *ref_logits = read_f32(&f, "logits", (size_t)N * V);
    float *logits = malloc((size_t)N * V * sizeof(float));
    lm_logits(&plan, &batch, logits);
    double d_logits = max_abs_diff(logits, ref_logits, (size_t)N * V);
    printf("  logits   max |diff| %.3g (tol %g)\n", d_logits, TOL_LOGITS);
    failed |= !(d_logits <= TOL_LOGITS);

    float *ref_loss = read_f32(&f, "loss", 1);
    int64_t n_tgt = 0;
    for (int i = 0; i < N; i++) n_tgt += targets[i] >= 0;
    int64_t counted = 0;
    double loss = lm_forward(&plan, &batch, 1, 1.0f / (float)n_tgt, &counted) / (double)counted;
    lm_backward(&plan);
    double d_loss = fabs(loss - ref_loss[0]);
    printf("  loss     %.6f vs %.6f, |diff| %.3g (tol %g)\n", loss, ref_loss[0], d_loss, TOL_LOSS);
    failed |= !(d_loss <= TOL_LOSS);

    // The same step with recompute: the same loss and gradient bits.
    lm_plan rplan;
    if (lm_plan_init_recompute(&rplan, &m, &a, B, T, 1)) test_fail("%s", err_msg());
    float *grads0 = malloc(a.n_params * sizeof(float));
    memcpy(grads0, a.grads, a.n_params * sizeof(float));
    memset(a.grads, 0, a.n_params * sizeof(float));
    counted = 0;
    double rloss = lm_forward(&rplan, &batch, 1, 1.0f / (float)n_tgt, &counted) / (double)counted;
    lm_backward(&rplan);
    int rsame = rloss == loss && !memcmp(grads0, a.grads, a.n_params * sizeof(float));
    printf("  recompute: loss and gradients %s\n", rsame ? "bit-equal" : "DIFFER");
    failed |= !rsame;

    float *ref_grads = calloc(a.n_params, sizeof(float));
    adapter_tensors(&f, &a, "grad.", ref_grads);
    char worst[256] = "";
    double g_rel = worst_tensor_rel(&a, grads0, ref_grads, worst, sizeof worst);
    printf("  grads    worst relative diff %.3g in %s (tol %g)\n", g_rel, worst, TOL_GRAD_REL);
    failed |= !(g_rel <= TOL_GRAD_REL);

    int steps = (int)json_num(aj, "steps", 0);
    if (steps > 0) {
        adamw_config oc = {(float)json_num(aj, "lr", 1e-3), (float)json_num(aj, "beta1", 0.9),
                           (float)json_num(aj, "beta2", 0.999), (float)json_num(aj, "eps", 1e-8),
                           (float)json_num(aj, "weight_decay", 0.01)};
        float *ref_losses = read_f32(&f, "adam_losses", (size_t)steps);
        double worst_step = 0;
        float *params0 = NULL;
        for (int rec = 0; rec < 2; rec++) {
            adamw_state opt;
            if (adamw_init(&opt, &oc, a.n_params) != 0) test_fail("%s", err_msg());
            adapter_tensors(&f, &a, "init.", a.params);
            for (int s = 0; s < steps; s++) {
                memset(a.grads, 0, a.n_params * sizeof(float));
                int64_t c = 0;
                double l = lm_forward(rec ? &rplan : &plan, &batch, 1, 1.0f / (float)n_tgt, &c) /
                           (double)c;
                lm_backward(rec ? &rplan : &plan);
                adamw_step(&opt, a.params, a.grads, oc.lr);
                double d = fabs(l - ref_losses[s]);
                if (d > worst_step || d != d) worst_step = d;
                if (!rec) printf("  adam %2d  %.6f vs %.6f\n", s, l, ref_losses[s]);
            }
            adamw_free(&opt);
            if (!rec) {
                params0 = malloc(a.n_params * sizeof(float));
                memcpy(params0, a.params, a.n_params * sizeof(float));
            }
        }
        rsame = !memcmp(params0, a.params, a.n_params * sizeof(float));
        printf("  recompute: adapter after %d steps %s\n", steps, rsame ? "bit-equal" : "DIFFERS");
        failed |= !rsame;
        free(params0);
        printf("  adam     worst loss |diff| %.3g over %d steps (tol %g)\n", worst_step, steps,
               TOL_LOSS);
        failed |= !(worst_step <= TOL_LOSS);
        float *ref_final = calloc(a.n_params, sizeof(float));
        adapter_tensors(&f, &a, "final.", ref_final);
        double f_rel = worst_tensor_rel(&a, a.params, ref_final, worst, sizeof worst);
        printf("  adapter  after %d steps: worst relative diff %.3g in %s (tol %g)\n", steps, f_rel,
               worst, TOL_GRAD_REL);
        failed |= !(f_rel <= TOL_GRAD_REL);
        free(ref_final);
        free(ref_losses);
    }
    free(grads0);
    lm_plan_free(&rplan);

    free(ref_grads);
    free(ref_loss);
    free(logits);
    free(ref_logits);
    free(tokens);
    free(targets);
    free(positions);
    free(doc_ids);
    lm_plan_free(&plan);
    lora_adapter_free(&a);
    cJSON_Delete(cs);
    safetensors_close(&f);
    model_free(&m);
    if (failed) test_fail("%s differs from the PyTorch twin", argv[2]);
    printf("PASS\n");
    return 0;
}
