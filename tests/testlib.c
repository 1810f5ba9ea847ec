#include "tests/testlib.h"
#include "tests/test_model.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

void test_skip(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("SKIP: ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
    exit(TEST_SKIP);
}

void test_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("FAIL: ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
    exit(1);
}

const char *test_env(const char *name, const char *fallback) {
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

const char *test_shared_dir(void) {
    const char *dir = test_env("MEDTUNE_SHARED", "../shared");
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        test_skip("shared folder %s is absent", dir);
    return dir;
}

double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > m || d != d) m = d;
    }
    return m;
}

double rel_l2_diff(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return sqrt(num) / (den > 1e-30 ? sqrt(den) : 1e-15);
}

void test_fill_uniform(float *x, size_t n, float scale, float offset, rng_state *r) {
    for (size_t i = 0; x && i < n; i++) x[i] = offset + scale * (2.0f * rng_uniform(r) - 1.0f);
}

void test_model_randomize(model *m, uint64_t seed) {
    const model_config *c = &m->cfg;
    const size_t C = (size_t)c->hidden_size, D = (size_t)c->head_dim;
    rng_state r;
    rng_init(&r, seed);
    test_fill_uniform(m->arena, m->n_params, 0.1f, 0.0f, &r);
    test_fill_uniform(m->final_norm, C, 0.1f, 1.0f, &r);
    for (int l = 0; l < c->n_layers; l++) {
        layer_weights *w = &m->layers[l];
        test_fill_uniform(w->attn_norm, C, 0.1f, 1.0f, &r);
        test_fill_uniform(w->mlp_norm, C, 0.1f, 1.0f, &r);
        test_fill_uniform(w->q_norm, D, 0.1f, 1.0f, &r);
        test_fill_uniform(w->k_norm, D, 0.1f, 1.0f, &r);
        test_fill_uniform(w->post_attn_norm, C, 0.1f, 1.0f, &r);
        test_fill_uniform(w->post_ffn_norm, C, 0.1f, 1.0f, &r);
    }
}
