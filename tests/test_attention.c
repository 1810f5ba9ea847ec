// Tiled attention (model/attention.c) against a float64 PyTorch reference written by
// tests/twin/check_attention.py: out, lse, dq, dk, dv within TOL relative L2 of the reference,
// and the same bits with 1 and 2 threads.
// usage: test_attention CASE.safetensors
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "formats/safetensors.h"
#include "model/attention.h"
#include "tests/testlib.h"

#define TOL 2e-5

static float *tensor(const st_file *f, const char *name, size_t n) {
    const st_tensor *t = safetensors_find(f, name);
    if (!t || t->n_elements != n) test_fail("%s: %s missing or not %zu elements", f->path, name, n);
    float *out = malloc(n * sizeof(float));
    if (!out || st_tensor_to_f32(f, t, out)) test_fail("%s", err_msg());
    return out;
}

static int meta_int(const st_file *f, const char *key) {
    const char *v = safetensors_metadata(f, key);
    if (!v) test_fail("%s: metadata %s missing", f->path, key);
    return atoi(v);
}

enum { OUT, LSE, DQ, DK, DV, N_RES };
static const char *const NAMES[N_RES] = {"out", "lse", "dq", "dk", "dv"};

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_attention CASE.safetensors\n");
        return 2;
    }
    st_file f;
    if (safetensors_open(&f, argv[1])) test_fail("%s", err_msg());
    const int B = meta_int(&f, "B"), T = meta_int(&f, "T"), H = meta_int(&f, "H");
    const int KV = meta_int(&f, "KV"), D = meta_int(&f, "D");
    const size_t N = (size_t)B * T, nq = N * H * D, nk = N * KV * D, nl = (size_t)B * H * T;
    const size_t sizes[N_RES] = {nq, nl, nq, nk, nk};
    float *q = tensor(&f, "q", nq), *k = tensor(&f, "k", nk), *v = tensor(&f, "v", nk);
    float *dout = tensor(&f, "dout", nq);
    const st_tensor *st = safetensors_find(&f, "start");
    if (!st || st->dtype != ST_I32 || st->n_elements != N) test_fail("start: I32 [B, T] expected");
    const int32_t *start = (const int32_t *)st->data;
    float *ref[N_RES], *got[2][N_RES];
    for (int i = 0; i < N_RES; i++) {
        ref[i] = tensor(&f, NAMES[i], sizes[i]);
        for (int r = 0; r < 2; r++) got[r][i] = calloc(sizes[i], sizeof(float));
    }
    float *scratch = malloc((size_t)attention_scratch_floats(B, T, H, D, 2) * sizeof(float));
    int failed = 0;
    for (int r = 0; r < 2; r++) {
        const int threads = r + 1;
        float **g = got[r];
        attention_forward(g[OUT], g[LSE], scratch, threads, q, k, v, start, B, T, H, KV, D);
        attention_backward(g[DQ], g[DK], g[DV], scratch, threads, dout, g[OUT], g[LSE], q, k, v,
                           start, B, T, H, KV, D);
    }
    for (int i = 0; i < N_RES; i++) {
        double d = rel_l2_diff(got[0][i], ref[i], sizes[i]);
        int same = !memcmp(got[0][i], got[1][i], sizes[i] * sizeof(float));
        printf("  %-4s relative L2 diff %.3g (tol %g), 1 and 2 threads %s\n", NAMES[i], d, TOL,
               same ? "identical" : "DIFFER");
        failed |= !(d <= TOL) || !same;
    }
    for (int i = 0; i < N_RES; i++) {
        free(ref[i]);
        for (int r = 0; r < 2; r++) free(got[r][i]);
    }
    free(q), free(k), free(v), free(dout), free(scratch);
    safetensors_close(&f);
    if (failed) test_fail("%s differs from the PyTorch reference", argv[1]);
    printf("PASS\n");
    return 0;
}
