// The products of the projections that share an input (q/k/v after attn_norm, gate/up after
// mlp_norm) on their own, each variant next to the other in the same loop (interleaved, so
// they see the same machine load): the decision data of docs/training.md, "Fused LoRA A
// products". Prints process CPU time per call (median and first quartile of --reps calls),
// which a loaded machine disturbs far less than wall time, and the wall-time median.
//   frozen, for F32 and BF16 weights (model/weight.c): the separate products; one product over
//     the adjacent rows [q; k; v] with the outputs copied out of [N, out_q + out_k + out_v]
//     (and, backward, the output gradients copied in); the one product alone, without the
//     copies (what a layout whose consumers read the concatenated rows could reach);
//   LoRA A products (r = --rank): forward x A^T, the dA product du^T x and the input gradient
//     du A, target by target and fused over the group (model/proj.c).
// usage: bench_group [--batch B] [--seq T] [--hidden C] [--intermediate F] [--heads H]
//        [--kv-heads KV] [--head-dim D] [--rank r] [--reps n]   (defaults: SmolLM2, 4 x 256)
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "common/clock.h"
#include "formats/gguf.h"
#include "formats/quant.h"
#include "model/weight.h"

enum { MAX_VARIANTS = 6, MAX_REPS = 101 };

static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec * 1e-6;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static float *filled(size_t n, unsigned salt) {
    float *p = malloc(n * sizeof(float));
    if (!p) {
        fprintf(stderr, "bench_group: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) p[i] = (float)((i * 2654435761u + salt) % 1000) * 1e-3f - 0.5f;
    return p;
}

typedef struct {
    const char *name[MAX_VARIANTS];
    double cpu[MAX_VARIANTS][MAX_REPS], wall[MAX_VARIANTS][MAX_REPS];
    int n;
} timings;

static void report(const char *what, timings *t, int reps) {
    for (int v = 0; v < t->n; v++) {
        qsort(t->cpu[v], (size_t)reps, sizeof(double), cmp_double);
        qsort(t->wall[v], (size_t)reps, sizeof(double), cmp_double);
        printf("%-16s %-28s cpu median %8.3f ms  q1 %8.3f ms  wall median %8.3f ms\n", what,
               t->name[v], t->cpu[v][reps / 2] * 1e3, t->cpu[v][reps / 4] * 1e3,
               t->wall[v][reps / 2] * 1e3);
    }
}

#define TIMED(t, v, rep, label, body)                 \
    do {                                              \
        (t)->name[v] = (label);                       \
        const double c0_ = cpu_s(), w0_ = clock_now_s(); \
        body;                                         \
        (t)->cpu[v][rep] = cpu_s() - c0_;             \
        (t)->wall[v][rep] = clock_now_s() - w0_;      \
    } while (0)

// ys[i] [N, outs[i]] <-> cat [N, sum outs] column blocks: to_cat 0 copies out, 1 copies in.
static void copy_blocks(float *cat, float *const *ys, const int *outs, int k, int N, int to_cat) {
    int O = 0;
    for (int i = 0; i < k; i++) O += outs[i];
    for (int n = 0; n < N; n++)
        for (int i = 0, o = 0; i < k; o += outs[i], i++) {
            float *c = cat + (size_t)n * O + o, *y = ys[i] + (size_t)n * outs[i];
            memcpy(to_cat ? c : y, to_cat ? y : c, (size_t)outs[i] * sizeof(float));
        }
}

static void bench_frozen(const char *group, uint32_t type, const int *outs, int k, int N, int C,
                         int reps) {
    int O = 0;
    for (int i = 0; i < k; i++) O += outs[i];
    float *wf = filled((size_t)O * C, 1), *x = filled((size_t)N * C, 2);
    float *dx = filled((size_t)N * C, 3), *cat = filled((size_t)N * O, 4);
    const size_t rb = quant_row_bytes(type, C);
    uint8_t *wb = malloc(rb * (size_t)O);
    for (int i = 0; i < O; i++) quant_quantize_row(type, wf + (size_t)i * C, wb + i * rb, C);
    weight_mat all, parts[3];
    float *ys[3], *dys[3];
    weight_mat_init(&all, type, wb, O, C, "bench", "all");
    for (int i = 0, o = 0; i < k; o += outs[i], i++) {
        weight_mat_init(&parts[i], type, wb + (size_t)o * rb, outs[i], C, "bench", "part");
        ys[i] = filled((size_t)N * outs[i], 5);
        dys[i] = filled((size_t)N * outs[i], 6);
    }
    timings *t = calloc(1, sizeof *t);
    t->n = 6;
    for (int rep = 0; rep < reps; rep++) {
        TIMED(t, 0, rep, "fwd separate",
              for (int i = 0; i < k; i++) weight_matmul_forward(ys[i], x, &parts[i], NULL, N));
        TIMED(t, 1, rep, "fwd one + copy-out", {
            weight_matmul_forward(cat, x, &all, NULL, N);
            copy_blocks(cat, ys, outs, k, N, 0);
        });
        TIMED(t, 2, rep, "fwd one, no copy", weight_matmul_forward(cat, x, &all, NULL, N));
        TIMED(t, 3, rep, "bwd separate",
              for (int i = 0; i < k; i++) weight_matmul_backward(dx, dys[i], &parts[i], N));
        TIMED(t, 4, rep, "bwd copy-in + one", {
            copy_blocks(cat, dys, outs, k, N, 1);
            weight_matmul_backward(dx, cat, &all, N);
        });
        TIMED(t, 5, rep, "bwd one, no copy", weight_matmul_backward(dx, cat, &all, N));
    }
    char what[64];
    snprintf(what, sizeof what, "%s %s", ggml_type_name(type), group);
    report(what, t, reps);
    for (int i = 0; i < k; i++) free(ys[i]), free(dys[i]);
    free(t), free(wf), free(wb), free(x), free(dx), free(cat);
}

static void bench_lora(const char *group, int k, int N, int C, int r, int reps) {
    const int R = k * r;
    float *x = filled((size_t)N * C, 7), *A = filled((size_t)R * C, 8);
    float *u = filled((size_t)N * R, 9), *du = filled((size_t)N * R, 10);
    float *dA = filled((size_t)R * C, 11), *dAcat = filled((size_t)R * C, 12);
    float *dx = filled((size_t)N * C, 13);
    timings *t = calloc(1, sizeof *t);
    t->n = 6;
    for (int rep = 0; rep < reps; rep++) {
        TIMED(t, 0, rep, "A fwd separate",
              for (int i = 0; i < k; i++) cblas_sgemm(
                  CblasRowMajor, CblasNoTrans, CblasTrans, N, r, C, 1.0f, x, C,
                  A + (size_t)i * r * C, C, 0.0f, u + (size_t)i * N * r, r));
        TIMED(t, 1, rep, "A fwd fused",
              cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, R, C, 1.0f, x, C, A, C,
                          0.0f, u, R));
        TIMED(t, 2, rep, "dA separate",
              for (int i = 0; i < k; i++) cblas_sgemm(
                  CblasRowMajor, CblasTrans, CblasNoTrans, r, C, N, 1.0f, du + (size_t)i * N * r,
                  r, x, C, 1.0f, dA + (size_t)i * r * C, C));
        TIMED(t, 3, rep, "dA fused + adds", {
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, R, C, N, 1.0f, du, R, x, C, 0.0f,
                        dAcat, C);
            cblas_saxpy(R * C, 1.0f, dAcat, 1, dA, 1);
        });
        TIMED(t, 4, rep, "dx separate",
              for (int i = 0; i < k; i++) cblas_sgemm(
                  CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, r, 1.0f,
                  du + (size_t)i * N * r, r, A + (size_t)i * r * C, C, 1.0f, dx, C));
        TIMED(t, 5, rep, "dx fused",
              cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, R, 1.0f, du, R, A, C,
                          1.0f, dx, C));
    }
    char what[64];
    snprintf(what, sizeof what, "lora %s", group);
    report(what, t, reps);
    free(t), free(x), free(A), free(u), free(du), free(dA), free(dAcat), free(dx);
}

int main(int argc, char **argv) {
    int B = 4, T = 256, C = 576, F = 1536, H = 9, KV = 3, D = 64, r = 16, reps = 21;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i];
        const int v = atoi(argv[i + 1]);
        if (!strcmp(k, "--batch")) B = v;
        else if (!strcmp(k, "--seq")) T = v;
        else if (!strcmp(k, "--hidden")) C = v;
        else if (!strcmp(k, "--intermediate")) F = v;
        else if (!strcmp(k, "--heads")) H = v;
        else if (!strcmp(k, "--kv-heads")) KV = v;
        else if (!strcmp(k, "--head-dim")) D = v;
        else if (!strcmp(k, "--rank")) r = v;
        else if (!strcmp(k, "--reps")) reps = v;
        else {
            fprintf(stderr, "bench_group: unknown option %s\n", k);
            return 2;
        }
    }
    if (reps < 1 || reps > MAX_REPS) {
        fprintf(stderr, "bench_group: --reps must be in [1, %d]\n", MAX_REPS);
        return 2;
    }
    const int N = B * T, qkv[3] = {H * D, KV * D, KV * D}, gate_up[2] = {F, F};
    const uint32_t types[2] = {GGML_TYPE_F32, GGML_TYPE_BF16};
    for (int i = 0; i < 2; i++) {
        bench_frozen("q/k/v", types[i], qkv, 3, N, C, reps);
        bench_frozen("gate/up", types[i], gate_up, 2, N, C, reps);
    }
    bench_lora("q/k/v", 3, N, C, r, reps);
    bench_lora("gate/up", 2, N, C, r, reps);
    return 0;
}
