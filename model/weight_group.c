#include "model/weight_group.h"

#include <stdlib.h>

#include "formats/gguf.h"

size_t weight_group_xq_bytes(int64_t cols, int N) {
    const size_t both =
        weight_dot_xq_bytes(GGML_TYPE_Q8_0, cols) + weight_dot_xq_bytes(GGML_TYPE_Q4_K, cols);
    return both * (size_t)N;
}

void weight_group_prepare(weight_group_plan *g, const weight_group_part *parts, int k,
                          const float *x, int N, int int8, uint8_t *xq) {
    const int64_t cols = parts[0].W->cols;
    *g = (weight_group_plan){.k = k, .N = N, .x = x};
    // One quantized copy of x per activation block size (32, 256) that some part uses: the
    // 32-value blocks first, then the 256-value ones.
    uint8_t *copy[2] = {xq, xq ? xq + weight_dot_xq_bytes(GGML_TYPE_Q8_0, cols) * (size_t)N
                               : NULL};
    int done[2] = {0, 0};
    for (int i = 0; i < k; i++) {
        const uint32_t type = parts[i].W->type;
        g->part[i] = parts[i];
        g->row_dot[i] = weight_row_dot_kernel(type);
        g->dot[i] = int8 && xq ? weight_dot_kernel(type) : NULL;
        if (g->dot[i]) {
            const int s = weight_dot_xq_block(type) != 32;
            g->xq_bytes[i] = weight_dot_xq_bytes(type, cols);
            for (int n = 0; !done[s] && n < N; n++)
                weight_dot_quantize_x(type, x + n * cols, copy[s] + n * g->xq_bytes[i], cols);
            done[s] = 1;
            g->xq[i] = copy[s];
        }
        const int64_t tasks = (parts[i].W->rows + WEIGHT_GROUP_TASK_ROWS - 1) /
                              WEIGHT_GROUP_TASK_ROWS;
        g->first_task[i + 1] = g->first_task[i] + tasks;
    }
}

// y[n, r] (row stride W->rows) = W[r, :] . x_n (+ b[r]): the expression of weight.c's
// dot_rows and gemv_rows, so each element is theirs bit for bit.
void weight_group_rows(const weight_group_plan *g, int i, int64_t r0, int64_t r1) {
    const weight_group_part *p = &g->part[i];
    const weight_mat *W = p->W;
    const int64_t ldy = W->rows;
    const int N = g->N;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)W->data + (size_t)r * W->row_bytes;
        if (g->dot[i]) {
            for (int n = 0; n < N; n++)
                p->y[n * ldy + r] = g->dot[i](row, g->xq[i] + n * g->xq_bytes[i], W->cols) +
                                    (p->b ? p->b[r] : 0.0f);
            continue;
        }
        float acc[WEIGHT_GEMV_MAX_ROWS];
        g->row_dot[i](W->type, acc, row, g->x, W->cols, N);
        for (int n = 0; n < N; n++) p->y[n * ldy + r] = acc[n] + (p->b ? p->b[r] : 0.0f);
    }
}

void weight_group_task(const weight_group_plan *g, int64_t t) {
    int i = g->k - 1;
    while (g->first_task[i] > t) i--;
    const int64_t rows = g->part[i].W->rows;
    const int64_t r0 = (t - g->first_task[i]) * WEIGHT_GROUP_TASK_ROWS;
    weight_group_rows(g, i, r0, r0 + WEIGHT_GROUP_TASK_ROWS < rows ? r0 + WEIGHT_GROUP_TASK_ROWS
                                                                   : rows);
}

void weight_group_gemv(const weight_group_part *parts, int k, const float *x, int N, int int8,
                       int threads) {
    const size_t bytes = int8 ? weight_group_xq_bytes(parts[0].W->cols, N) : 0;
    uint8_t *xq = bytes ? malloc(bytes) : NULL;
    weight_group_plan g;
    weight_group_prepare(&g, parts, k, x, N, int8, xq);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (int64_t t = 0; t < g.first_task[k]; t++) weight_group_task(&g, t);
    free(xq);
}
