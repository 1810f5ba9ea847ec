// The gradient reduction of data-parallel training alone (train/dist.c: the chain of ranks,
// then the broadcast), on gradient sizes of the SmolLM2-135M, 1B and 7B shapes (LoRA r=16 on
// all 7 projections, fp32). The ranks line up first (dist_agree is an allreduce), so the time is
// the transfer and the additions, without the waiting for a slow rank that metrics.jsonl's
// comm_ms includes. Prints one JSON line per size (rank 0).
// usage: mpirun -np N bench_reduce [REPS]
#include <stdio.h>
#include <stdlib.h>

#include "common/clock.h"
#include "common/error.h"
#include "train/dist.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 10;
    if (reps < 1 || reps > 1000) reps = 10;
    dist_ctx d;
    if (dist_init(&d)) {
        fprintf(stderr, "bench_reduce: %s\n", err_msg());
        return 1;
    }
    // n_params of LoRA r=16 on all 7 projections (bench/scaling_model.py lora_params).
    const struct {
        const char *shape;
        size_t n;
    } sizes[] = {{"SmolLM2-135M", 4884480}, {"1B", 12615680}, {"7B", 39976960}};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        size_t n = sizes[s].n;
        float *g = malloc(n * sizeof(float)), *sum = malloc(n * sizeof(float));
        double *ms = malloc((size_t)reps * sizeof(double));
        if (!g || !sum || !ms || dist_reserve(&d, n)) {
            fprintf(stderr, "bench_reduce: out of memory\n");
            return 1;
        }
        for (size_t i = 0; i < n; i++) g[i] = (float)((i * 2654435761u) % 1000) * 1e-6f;
        int64_t bytes = 0;
        for (int r = 0; r < reps; r++) {
            int first;
            dist_agree(&d, 0, &first, NULL);
            d.comm_bytes = 0;
            double t0 = clock_now_s();
            dist_chain_add(&d, sum, g, n, 0, 1);
            dist_bcast_sum(&d, sum, n);
            ms[r] = 1e3 * (clock_now_s() - t0);
            bytes = d.comm_bytes;
        }
        qsort(ms, (size_t)reps, sizeof(double), cmp_double);
        if (d.rank == 0)
            printf("{\"shape\": \"%s\", \"ranks\": %d, \"mb\": %.2f, \"sent_mb_rank0\": %.2f, "
                   "\"ms_median\": %.2f, \"ms_min\": %.2f}\n",
                   sizes[s].shape, d.size, (double)n * 4 / 1e6, (double)bytes / 1e6,
                   ms[reps / 2], ms[0]);
        free(g);
        free(sum);
        free(ms);
    }
    dist_free(&d);
    return 0;
}
