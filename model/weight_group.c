#include "model/weight_group.h"

#include <stdlib.h>

#include "model/weight_dot.h"
#include "model/weight_kernels.h"

// Output rows per task, as weight_gemv's: enough work per task to amortise the loop, small
// enough that two threads get equal shares of a 256-row k or v projection.
enum { ROWS_PER_TASK = 64 };

// What one part needs at run time: its integer kernel and quantized input (NULL: fp32), its
// fp32 kernel, and where its tasks start in the group's list.
typedef struct {
    weight_dot_fn dot;
    const uint8_t *xq;
    size_t xq_bytes;
    weight_row_dot_fn row_dot;
    int64_t first_task;
} part_plan;

// y[n, r] (row stride W->rows) = W[r, :] . x_n (+ b[r]) for rows r0..r1-1 of one part: the
// expression of weight.c's dot_rows and gemv_rows, so each element is theirs bit for bit.
static void part_rows(const weight_group_part *p, const part_plan *pl, const float *x, int N,
                      int64_t r0, int64_t r1) {
    const weight_mat *W = p->W;
    const int64_t ldy = W->rows;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)W->data + (size_t)r * W->row_bytes;
        if (pl->dot) {
            for (int n = 0; n < N; n++)
                p->y[n * ldy + r] = pl->dot(row, pl->xq + n * pl->xq_bytes, W->cols) +
                                    (p->b ? p->b[r] : 0.0f);
            continue;
        }
        float acc[WEIGHT_GEMV_MAX_ROWS];
        pl->row_dot(W->type, acc, row, x, W->cols, N);
        for (int n = 0; n < N; n++) p->y[n * ldy + r] = acc[n] + (p->b ? p->b[r] : 0.0f);
    }
}

void weight_group_gemv(const weight_group_part *parts, int k, const float *x, int N, int int8,
                       int threads) {
    const int64_t cols = parts[0].W->cols;
    part_plan plan[WEIGHT_GROUP_MAX];
    // One quantized copy of x per activation block size (32, 256) that some part uses.
    size_t bytes[2] = {0, 0};
    for (int i = 0; i < k; i++) {
        const uint32_t type = parts[i].W->type;
        plan[i] = (part_plan){.dot = int8 ? weight_dot_kernel(type) : NULL,
                              .row_dot = weight_row_dot_kernel(type)};
        if (plan[i].dot) {
            plan[i].xq_bytes = weight_dot_xq_bytes(type, cols);
            bytes[weight_dot_xq_block(type) != 32] = plan[i].xq_bytes;
        }
    }
    uint8_t *buf = bytes[0] + bytes[1] ? malloc((bytes[0] + bytes[1]) * (size_t)N) : NULL;
    uint8_t *xq[2] = {buf, buf ? buf + bytes[0] * (size_t)N : NULL};
    int done[2] = {0, 0};
    int64_t n_tasks = 0;
    for (int i = 0; i < k; i++) {
        const uint32_t type = parts[i].W->type;
        if (plan[i].dot && !buf) plan[i].dot = NULL;
        if (plan[i].dot) {
            const int s = weight_dot_xq_block(type) != 32;
            for (int n = 0; !done[s] && n < N; n++)
                weight_dot_quantize_x(type, x + n * cols, xq[s] + n * plan[i].xq_bytes, cols);
            done[s] = 1;
            plan[i].xq = xq[s];
        }
        plan[i].first_task = n_tasks;
        n_tasks += (parts[i].W->rows + ROWS_PER_TASK - 1) / ROWS_PER_TASK;
    }
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (int64_t t = 0; t < n_tasks; t++) {
        int i = k - 1;
        while (plan[i].first_task > t) i--;
        const int64_t rows = parts[i].W->rows, r0 = (t - plan[i].first_task) * ROWS_PER_TASK;
        const int64_t r1 = r0 + ROWS_PER_TASK < rows ? r0 + ROWS_PER_TASK : rows;
        part_rows(&parts[i], &plan[i], x, N, r0, r1);
    }
    free(buf);
}
