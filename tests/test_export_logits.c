// Logits helper of the export tests (driven by tests/export/*.py):
//   compare BASE ADAPTER_DIR MERGED TOL   logits of BASE + adapter vs the merged model: fails
//                                         when max |diff| > TOL, or when the adapter changes
//                                         the logits by less than 10 * TOL (a vacuous check)
//   dump MODEL ADAPTER_DIR|- OUT.f32      logits [B*T, V] of the fixed test batch, raw fp32
//   random-adapter MODEL OUT_DIR R ALPHA TARGETS SEED RSLORA
//                                         a PEFT adapter with PEFT-initialised A and random
//                                         non-zero B (TARGETS: comma list or "all")
// The test batch: B = 2 rows of T = 24 tokens, token j of row b = (7919 * (b * T + j) + 13) % V.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoints/peft.h"
#include "common/error.h"
#include "common/rng.h"
#include "tests/testlib.h"
#include "model/lora.h"
#include "model/model.h"
#include "model/transformer.h"

enum { BATCH = 2, SEQ = 24 };

static float *logits_of(const model *m, const lora_adapter *a) {
    int32_t tokens[BATCH * SEQ], targets[BATCH * SEQ];
    for (int i = 0; i < BATCH * SEQ; i++) {
        tokens[i] = (int32_t)((7919LL * i + 13) % m->cfg.vocab_size);
        targets[i] = -1;
    }
    lm_plan p;
    if (lm_plan_init(&p, m, a, BATCH, SEQ)) test_fail("lm_plan_init: %s", err_msg());
    float *out = malloc((size_t)BATCH * SEQ * m->cfg.vocab_size * sizeof(float));
    if (!out) test_fail("out of memory");
    lm_batch b = {tokens, targets, NULL, NULL};
    lm_logits(&p, &b, out);
    lm_plan_free(&p);
    return out;
}

static void load(model *m, const char *path) {
    if (model_load(m, path)) test_fail("%s", err_msg());
}

static void load_adapter(lora_adapter *a, const char *dir, const model *m) {
    if (peft_adapter_load(dir, &m->cfg, a)) test_fail("%s", err_msg());
}

static int compare(const char *base, const char *adapter, const char *merged, double tol) {
    model m;
    lora_adapter a;
    load(&m, base);
    load_adapter(&a, adapter, &m);
    float *with = logits_of(&m, &a);
    float *plain = logits_of(&m, NULL);
    size_t n = (size_t)BATCH * SEQ * m.cfg.vocab_size;
    model_free(&m);
    lora_adapter_free(&a);
    load(&m, merged);
    float *got = logits_of(&m, NULL);
    if ((size_t)BATCH * SEQ * m.cfg.vocab_size != n) test_fail("vocab sizes differ");
    double diff = max_abs_diff(got, with, n), effect = max_abs_diff(plain, with, n);
    double peak = 0;
    for (size_t i = 0; i < n; i++) peak = fmax(peak, fabs((double)with[i]));
    printf("merged vs base+adapter: max |diff| %.3g (tol %.3g); adapter effect max |diff| %.3g; "
           "max |logit| %.3g\n",
           diff, tol, effect, peak);
    model_free(&m);
    free(with);
    free(plain);
    free(got);
    if (!(diff <= tol)) test_fail("merged logits differ by %.3g > %.3g", diff, tol);
    if (!(effect >= 10 * tol)) test_fail("adapter effect %.3g is too small to test", effect);
    printf("PASS\n");
    return 0;
}

static int dump(const char *path, const char *adapter, const char *out) {
    model m;
    lora_adapter a;
    load(&m, path);
    int with = strcmp(adapter, "-") != 0;
    if (with) load_adapter(&a, adapter, &m);
    float *l = logits_of(&m, with ? &a : NULL);
    size_t n = (size_t)BATCH * SEQ * m.cfg.vocab_size;
    FILE *f = fopen(out, "wb");
    if (!f || fwrite(l, sizeof(float), n, f) != n || fclose(f)) test_fail("%s: cannot write", out);
    printf("wrote %zu logits [%d, %d]\n", n, BATCH * SEQ, m.cfg.vocab_size);
    free(l);
    if (with) lora_adapter_free(&a);
    model_free(&m);
    return 0;
}

static int random_adapter(char **argv) {
    model m;
    load(&m, argv[0]);
    lora_config cfg = {.r = atoi(argv[2]), .alpha = (float)atof(argv[3]),
                       .use_rslora = atoi(argv[6])};
    if (!strcmp(argv[4], "all"))
        cfg.targets = (1u << LORA_N_TARGETS) - 1;
    else
        for (char *t = strtok(argv[4], ","); t; t = strtok(NULL, ",")) {
            int k = lora_target_from_name(t);
            if (k < 0) test_fail("unknown target %s", t);
            cfg.targets |= 1u << k;
        }
    lora_adapter a;
    if (lora_adapter_init(&a, &m.cfg, &cfg)) test_fail("%s", err_msg());
    uint64_t seed = strtoull(argv[5], NULL, 10);
    lora_adapter_init_peft(&a, seed);
    // B ~ U(-0.05, 0.05) * 2: large enough that the adapter visibly moves the logits.
    rng_state r;
    rng_init(&r, seed ^ 0x5eed);
    for (int l = 0; l < a.n_layers; l++)
        for (int t = 0; t < LORA_N_TARGETS; t++)
            if (lora_enabled(&a, t)) {
                float *B = lora_B(&a, l, t);
                for (size_t i = 0; i < (size_t)a.slots[t].out * cfg.r; i++)
                    B[i] = 0.1f * (rng_uniform(&r) - 0.5f);
            }
    if (peft_adapter_write(argv[1], &a, argv[0])) test_fail("%s", err_msg());
    lora_adapter_free(&a);
    model_free(&m);
    printf("wrote %s\n", argv[1]);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 6 && !strcmp(argv[1], "compare"))
        return compare(argv[2], argv[3], argv[4], atof(argv[5]));
    if (argc == 5 && !strcmp(argv[1], "dump")) return dump(argv[2], argv[3], argv[4]);
    if (argc == 9 && !strcmp(argv[1], "random-adapter")) return random_adapter(argv + 2);
    fprintf(stderr, "usage: see the comment at the top of tests/test_export_logits.c\n");
    return 2;
}
