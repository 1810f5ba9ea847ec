#include "model/weight.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "formats/gguf.h"
#include "formats/quant.h"
#include "model/weight_dot.h"
#include "model/weight_kernels.h"

// fp32 values one thread dequantizes at a time for a forward panel: about 1 MB, within a
// 1-2 MB L2. At least 64 rows whatever the width: sgemm packs the whole of x again for every
// panel, and 16-row panels of a 5632-wide down_proj made that packing cost 60% on top of the
// product (measured; 64 rows: 10%).
enum { PANEL_FLOATS = 1 << 18, PANEL_MIN_ROWS = 64, PANEL_MAX_ROWS = 256 };
// Backward tiles: TILE_ROWS rows x TILE_COLS columns of W (512 KB of fp32). TILE_COLS is a
// multiple of every block size (32 and 256) and the tiling depends on the shape alone, never
// on the thread count, so the sums come out the same with any number of threads.
enum { TILE_ROWS = 512, TILE_COLS = 256 };

size_t weight_row_bytes(uint32_t type, int64_t cols) {
    const int64_t bs = quant_block_size(type);
    if (!quant_can_dequantize(type) || cols <= 0 || cols % bs) return 0;
    return quant_row_bytes(type, cols);
}

int weight_mat_init(weight_mat *w, uint32_t type, const void *data, int64_t rows, int64_t cols,
                    const char *file, const char *name) {
    memset(w, 0, sizeof *w);
    if (!quant_can_dequantize(type))
        return err_set("%s: %s: tensor type %s is not supported (nearest supported: %s)", file,
                       name, ggml_type_name(type), quant_nearest_supported(type));
    size_t rb = weight_row_bytes(type, cols);
    if (!rb)
        return err_set("%s: %s: %lld columns are not a whole number of %s blocks of %lld", file,
                       name, (long long)cols, ggml_type_name(type),
                       (long long)quant_block_size(type));
    *w = (weight_mat){.type = type, .data = data, .rows = rows, .cols = cols, .row_bytes = rb};
    return 0;
}

void weight_mat_f32(weight_mat *w, const float *data, int64_t rows, int64_t cols) {
    *w = (weight_mat){.type = GGML_TYPE_F32, .data = data, .rows = rows, .cols = cols,
                      .row_bytes = (size_t)cols * sizeof(float)};
}

size_t weight_mat_bytes(const weight_mat *w) { return (size_t)w->rows * w->row_bytes; }

static const uint8_t *row_at(const weight_mat *w, int64_t r) {
    return (const uint8_t *)w->data + (size_t)r * w->row_bytes;
}

void weight_rows_to_f32(const weight_mat *w, int64_t r0, int64_t n, float *dst) {
    const weight_dequant_fn dq = weight_dequant_kernel(w->type);
    for (int64_t i = 0; i < n; i++) dq(w->type, row_at(w, r0 + i), dst + i * w->cols, w->cols);
}

void weight_gather_f32(const weight_mat *w, const int32_t *ids, int64_t n, float *dst) {
    const weight_dequant_fn dq = weight_dequant_kernel(w->type);
    for (int64_t i = 0; i < n; i++) dq(w->type, row_at(w, ids[i]), dst + i * w->cols, w->cols);
}

// Columns c0..c0+n-1 of rows r0..r0+nr-1 into dst [nr, n]; c0 and n are whole blocks.
static void tile_to_f32(const weight_mat *w, int64_t r0, int64_t nr, int64_t c0, int64_t n,
                        float *dst) {
    const size_t skip = (size_t)(c0 / quant_block_size(w->type)) * quant_block_bytes(w->type);
    const weight_dequant_fn dq = weight_dequant_kernel(w->type);
    for (int64_t i = 0; i < nr; i++) dq(w->type, row_at(w, r0 + i) + skip, dst + i * n, n);
}

static int64_t panel_rows(int64_t cols) {
    int64_t p = PANEL_FLOATS / cols / 16 * 16;
    return p < PANEL_MIN_ROWS ? PANEL_MIN_ROWS : p > PANEL_MAX_ROWS ? PANEL_MAX_ROWS : p;
}

static void fill_bias(float *y, const float *b, int N, int64_t out) {
    for (int n = 0; n < N; n++) memcpy(y + n * out, b, (size_t)out * sizeof(float));
}

void weight_gemv_rows(float *y, int64_t ldy, const float *x, const weight_mat *W, int64_t r0,
                      int64_t r1, const float *b, int N, int accumulate) {
    const weight_row_dot_fn dot = weight_row_dot_kernel(W->type);
    for (int64_t r = r0; r < r1; r++) {
        float acc[WEIGHT_GEMV_MAX_ROWS];
        dot(W->type, acc, row_at(W, r), x, W->cols, N);
        for (int n = 0; n < N; n++) {
            float *yr = y + n * ldy + r;
            *yr = acc[n] + (b ? b[r] : accumulate ? *yr : 0.0f);
        }
    }
}

void weight_dot_rows(float *y, int64_t ldy, const uint8_t *xq, size_t xq_bytes,
                     const weight_mat *W, weight_dot_fn dot, int64_t r0, int64_t r1,
                     const float *b, int N) {
    for (int64_t r = r0; r < r1; r++)
        for (int n = 0; n < N; n++)
            y[n * ldy + r] = dot(row_at(W, r), xq + n * xq_bytes, W->cols) + (b ? b[r] : 0.0f);
}

// Products with fewer weights than this run on the calling thread: an OpenMP region costs a
// barrier, which on a busy machine waits for a descheduled thread.
#define GEMV_PARALLEL_MIN_WEIGHTS (1 << 18)

// The rows of W split into tasks of 64 over the threads when the product is large enough;
// xq (xq_bytes per x row) selects the integer kernel `dot`, NULL the fp32 kernels.
static void gemv_tasks(float *y, const float *x, const uint8_t *xq, size_t xq_bytes,
                       weight_dot_fn dot, const weight_mat *W, const float *b, int N) {
    const int64_t rows = W->rows;
    const int par = rows * W->cols >= GEMV_PARALLEL_MIN_WEIGHTS;
    enum { ROWS_PER_TASK = 64 };
    const int64_t n_tasks = (rows + ROWS_PER_TASK - 1) / ROWS_PER_TASK;
#pragma omp parallel for schedule(static) if (par)
    for (int64_t k = 0; k < n_tasks; k++) {
        const int64_t r0 = k * ROWS_PER_TASK;
        const int64_t r1 = r0 + ROWS_PER_TASK < rows ? r0 + ROWS_PER_TASK : rows;
        if (xq)
            weight_dot_rows(y, rows, xq, xq_bytes, W, dot, r0, r1, b, N);
        else
            weight_gemv_rows(y, rows, x, W, r0, r1, b, N, 0);
    }
}

void weight_gemv(float *y, const float *x, const weight_mat *W, const float *b, int N) {
    gemv_tasks(y, x, NULL, 0, NULL, W, b, N);
}

void weight_gemv_int8(float *y, const float *x, const weight_mat *W, const float *b, int N) {
    const int64_t cols = W->cols;
    // The x rows are quantized once per product, for every output row to reuse; without the
    // buffer (or an integer kernel) the product takes the fp32 kernels.
    const weight_dot_fn dot = weight_dot_kernel(W->type);
    const size_t xq_bytes = dot ? weight_dot_xq_bytes(W->type, cols) : 0;
    uint8_t *xq = dot ? malloc(xq_bytes * (size_t)N) : NULL;
    for (int n = 0; xq && n < N; n++)
        weight_dot_quantize_x(W->type, x + n * cols, xq + n * xq_bytes, cols);
    gemv_tasks(y, x, xq, xq_bytes, dot, W, b, N);
    free(xq);
}

void weight_matmul_forward(float *y, const float *x, const weight_mat *W, const float *b, int N) {
    const int64_t out = W->rows, in = W->cols;
    if (W->type == GGML_TYPE_F32) {
        float beta = 0.0f;
        if (b) fill_bias(y, b, N, out), beta = 1.0f;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, (int)out, (int)in, 1.0f, x,
                    (int)in, W->data, (int)in, beta, y, (int)out);
        return;
    }
    float beta = 0.0f;
    if (b) fill_bias(y, b, N, out), beta = 1.0f;
    // Each panel's sgemm sums over the full width, in the order one sgemm on the fp32 matrix
    // would: splitting the output columns does not change any output element's sum.
    const int64_t P = panel_rows(in), n_panels = (out + P - 1) / P;
#pragma omp parallel
    {
        float *buf = malloc((size_t)(P * in) * sizeof(float));
#pragma omp for schedule(static)
        for (int64_t k = 0; k < n_panels; k++) {
            const int64_t r0 = k * P, np = out - r0 < P ? out - r0 : P;
            if (!buf) {
                // No memory for a panel: the same product through the block kernels, which
                // need none (slower, and summed in another order).
                for (int n0 = 0; n0 < N; n0 += WEIGHT_GEMV_MAX_ROWS) {
                    const int nn = N - n0 < WEIGHT_GEMV_MAX_ROWS ? N - n0 : WEIGHT_GEMV_MAX_ROWS;
                    weight_gemv_rows(y + (int64_t)n0 * out, out, x + (int64_t)n0 * in, W, r0, r0 + np,
                              NULL, nn, b != NULL);
                }
                continue;
            }
            tile_to_f32(W, r0, np, 0, in, buf);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, (int)np, (int)in, 1.0f, x,
                        (int)in, buf, (int)in, beta, y + r0, (int)out);
        }
        free(buf);
    }
}

void weight_matmul_backward(float *dx, const float *dy, const weight_mat *W, int N) {
    const int64_t out = W->rows, in = W->cols;
    if (W->type == GGML_TYPE_F32) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, (int)in, (int)out, 1.0f, dy,
                    (int)out, W->data, (int)in, 1.0f, dx, (int)in);
        return;
    }
    const int64_t n_tiles = (in + TILE_COLS - 1) / TILE_COLS;
#pragma omp parallel
    {
        float *buf = malloc((size_t)TILE_ROWS * TILE_COLS * sizeof(float));
        float stack_rows[TILE_COLS];
#pragma omp for schedule(static)
        for (int64_t t = 0; t < n_tiles; t++) {
            const int64_t c0 = t * TILE_COLS, nc = in - c0 < TILE_COLS ? in - c0 : TILE_COLS;
            for (int64_t r0 = 0; r0 < out; r0 += TILE_ROWS) {
                const int64_t nr = out - r0 < TILE_ROWS ? out - r0 : TILE_ROWS;
                if (buf) {
                    tile_to_f32(W, r0, nr, c0, nc, buf);
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, (int)nc, (int)nr,
                                1.0f, dy + r0, (int)out, buf, (int)nc, 1.0f, dx + c0, (int)in);
                    continue;
                }
                // No memory for a tile: one row of W at a time (a rank-1 update per row).
                for (int64_t i = 0; i < nr; i++) {
                    tile_to_f32(W, r0 + i, 1, c0, nc, stack_rows);
                    cblas_sger(CblasRowMajor, N, (int)nc, 1.0f, dy + r0 + i, (int)out,
                               stack_rows, 1, dx + c0, (int)in);
                }
            }
        }
        free(buf);
    }
}

const char *weight_gemv_isa(void) { return weight_kernels_isa(); }
