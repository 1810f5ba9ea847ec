#include "model/ops.h"

#include <math.h>
#include <string.h>

#include "model/ops_vec.h"

void embedding_forward(float *out, const int32_t *tokens, const weight_mat *embed, int N) {
    weight_gather_f32(embed, tokens, N, out);
}

void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int N, int C,
                     float eps) {
    const ops_vec *k = ops_vec_get();
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        rstd[n] = k->rmsnorm_row(out + (int64_t)n * C, inp + (int64_t)n * C, w, C, eps);
}

// y_i = w_i x_i r with r = (mean(x^2)+eps)^(-1/2), so
// dx_i = r w_i dy_i - (r^3 / C) x_i sum_j w_j dy_j x_j.
void rmsnorm_backward(float *dinp, const float *dout, const float *inp, const float *w,
                      const float *rstd, int N, int C) {
    const ops_vec *k = ops_vec_get();
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        k->rmsnorm_row_backward(dinp + (int64_t)n * C, dout + (int64_t)n * C,
                                inp + (int64_t)n * C, w, rstd[n], C);
}

void rope_tables_init(float *cos_t, float *sin_t, int P, int D, const model_config *cfg) {
    int half = D / 2;
    float inv_freq[half];
    for (int j = 0; j < half; j++) {
        // transformers: 1 / theta ** (arange(0, D, 2).float() / D), in fp32
        float expo = (float)(2 * j) / (float)D;
        inv_freq[j] = 1.0f / powf(cfg->rope_theta, expo);
    }
    if (cfg->rope_scaling == ROPE_SCALING_LINEAR) {
        for (int j = 0; j < half; j++) inv_freq[j] /= cfg->rope_factor;
    } else if (cfg->rope_scaling == ROPE_SCALING_LLAMA3) {
        // Llama 3.1: long wavelengths scaled by 1/factor, short kept, smooth blend between.
        float factor = cfg->rope_factor;
        float old_ctx = (float)cfg->rope_original_max_position;
        float low_wavelen = old_ctx / cfg->rope_low_freq_factor;
        float high_wavelen = old_ctx / cfg->rope_high_freq_factor;
        for (int j = 0; j < half; j++) {
            float wavelen = 2.0f * (float)M_PI / inv_freq[j];
            float f = inv_freq[j];
            if (wavelen > low_wavelen) {
                f = inv_freq[j] / factor;
            } else if (wavelen >= high_wavelen) {
                float smooth = (old_ctx / wavelen - cfg->rope_low_freq_factor) /
                               (cfg->rope_high_freq_factor - cfg->rope_low_freq_factor);
                f = (1.0f - smooth) * inv_freq[j] / factor + smooth * inv_freq[j];
            }
            inv_freq[j] = f;
        }
    }
    for (int p = 0; p < P; p++)
        for (int j = 0; j < half; j++) {
            float angle = (float)p * inv_freq[j];
            cos_t[(int64_t)p * half + j] = cosf(angle);
            sin_t[(int64_t)p * half + j] = sinf(angle);
        }
}

static void rope_rotate(float *x, const int32_t *pos, const float *cos_t, const float *sin_t,
                        int N, int nh, int D, float sign) {
    const int half = D / 2;
    const ops_vec *k = ops_vec_get();
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        k->rope_row(x + (int64_t)n * nh * D, cos_t + (int64_t)pos[n] * half,
                    sin_t + (int64_t)pos[n] * half, nh, D, sign);
}

void rope_forward(float *x, const int32_t *pos, const float *cos_t, const float *sin_t, int N,
                  int nh, int D) {
    rope_rotate(x, pos, cos_t, sin_t, N, nh, D, 1.0f);
}

void rope_backward(float *dx, const int32_t *pos, const float *cos_t, const float *sin_t, int N,
                   int nh, int D) {
    rope_rotate(dx, pos, cos_t, sin_t, N, nh, D, -1.0f);
}

// The element-wise ops run the table's kernel on fixed blocks of OPS_VEC_BLOCK elements.
static int block_len(int64_t n, int64_t i) {
    return (int)(n - i < OPS_VEC_BLOCK ? n - i : OPS_VEC_BLOCK);
}

// SwiGLU and GeGLU differ only in the kernel: blocks of n run in parallel.
static void gated_forward(void (*kernel)(float *, const float *, const float *, int), float *h,
                          const float *g, const float *u, int64_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i += OPS_VEC_BLOCK) kernel(h + i, g + i, u + i, block_len(n, i));
}

static void gated_backward(void (*kernel)(float *, float *, const float *, const float *,
                                          const float *, int),
                           float *dg, float *du, const float *dh, const float *g, const float *u,
                           int64_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i += OPS_VEC_BLOCK)
        kernel(dg + i, du + i, dh + i, g + i, u + i, block_len(n, i));
}

void swiglu_forward(float *h, const float *g, const float *u, int64_t n) {
    gated_forward(ops_vec_get()->swiglu_forward, h, g, u, n);
}

void swiglu_backward(float *dg, float *du, const float *dh, const float *g, const float *u,
                     int64_t n) {
    gated_backward(ops_vec_get()->swiglu_backward, dg, du, dh, g, u, n);
}

void geglu_forward(float *h, const float *g, const float *u, int64_t n) {
    gated_forward(ops_vec_get()->geglu_forward, h, g, u, n);
}

void geglu_backward(float *dg, float *du, const float *dh, const float *g, const float *u,
                    int64_t n) {
    gated_backward(ops_vec_get()->geglu_backward, dg, du, dh, g, u, n);
}

void softcap_forward(float *x, int64_t n, float cap) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) x[i] = tanhf(x[i] / cap) * cap;
}

void softcap_backward(float *dx, const float *y, int64_t n, float cap) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float t = y[i] / cap;
        dx[i] *= 1.0f - t * t;
    }
}

void scale_inplace(float *x, int64_t n, float s) {
    const ops_vec *k = ops_vec_get();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i += OPS_VEC_BLOCK) k->scale(x + i, block_len(n, i), s);
}

void add_inplace(float *y, const float *x, int64_t n) {
    const ops_vec *k = ops_vec_get();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i += OPS_VEC_BLOCK) k->add(y + i, x + i, block_len(n, i));
}

// Rows are summed in blocks whose size depends only on N (at most CE_MAX_BLOCKS of them),
// each block sequentially, and the block sums are added in block order. Which thread runs a
// block changes nothing, so the loss is bit-identical for any thread count (a per-thread
// partition would group the rows differently for each count, and an OpenMP reduction clause
// adds partial sums in arrival order).
#define CE_MAX_BLOCKS 256
double crossentropy_forward_backward(float *dlogits, const float *logits, const int32_t *targets,
                                     int N, int V, float grad_scale, int64_t *n_targets) {
    double block_loss[CE_MAX_BLOCKS];
    int64_t block_count[CE_MAX_BLOCKS];
    const int rows = N > CE_MAX_BLOCKS ? (N + CE_MAX_BLOCKS - 1) / CE_MAX_BLOCKS : 1;
    const int n_blocks = (N + rows - 1) / rows;
    const ops_vec *k = ops_vec_get();
#pragma omp parallel for schedule(static)
    for (int b = 0; b < n_blocks; b++) {
        double loss = 0.0;
        int64_t count = 0;
        const int end = (b + 1) * rows < N ? (b + 1) * rows : N;
        for (int n = b * rows; n < end; n++) {
            const float *z = logits + (int64_t)n * V;
            float *dz = dlogits ? dlogits + (int64_t)n * V : NULL;
            int t = targets[n];
            if (t < 0) {
                if (dz) memset(dz, 0, (size_t)V * sizeof(float));
                continue;
            }
            const float mx = k->max(z, V);
            const float logsum = (float)log(k->sum_exp(z, V, mx)) + mx;
            loss += (double)logsum - (double)z[t];
            count++;
            if (dz) {
                k->exp_shift(dz, z, V, logsum, grad_scale);
                dz[t] -= grad_scale;
            }
        }
        block_loss[b] = loss;
        block_count[b] = count;
    }
    double total = 0.0;
    for (int b = 0; b < n_blocks; b++) {
        total += block_loss[b];
        *n_targets += block_count[b];
    }
    return total;
}
