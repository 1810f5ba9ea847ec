#include "model/weight_group.h"

#include <stdlib.h>

#include "model/weight_dot.h"

// Output rows per task, as weight_gemv's: enough work per task to amortise the loop, small
// enough that two threads get equal shares of a 256-row k or v projection.
enum { ROWS_PER_TASK = 64 };

// What one part needs at run time: its integer kernel and quantized input (NULL: fp32), and
// where its tasks start in the group's list.
typedef struct {
    weight_dot_fn dot;
    const uint8_t *xq;
    size_t xq_bytes;
    int64_t first_task;
} part_plan;

void weight_group_gemv(const weight_group_part *parts, int k, const float *x, int N, int int8,
                       int threads) {
    const int64_t cols = parts[0].W->cols;
    part_plan plan[WEIGHT_GROUP_MAX];
    // One quantized copy of x per activation block size (32, 256) that some part uses.
    size_t bytes[2] = {0, 0};
    for (int i = 0; i < k; i++) {
        const uint32_t type = parts[i].W->type;
        plan[i] = (part_plan){.dot = int8 ? weight_dot_kernel(type) : NULL};
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
        const weight_group_part *part = &parts[i];
        if (plan[i].dot)
            weight_dot_rows(part->y, rows, plan[i].xq, plan[i].xq_bytes, part->W, plan[i].dot,
                            r0, r1, part->b, N);
        else
            weight_gemv_rows(part->y, rows, x, part->W, r0, r1, part->b, N, 0);
    }
    free(buf);
}
