#include "model/ops.h"

#include <math.h>
#include <string.h>

void embedding_forward(float *out, const int32_t *tokens, const weight_mat *embed, int N) {
    weight_gather_f32(embed, tokens, N, out);
}

void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int N, int C,
                     float eps) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (int64_t)n * C;
        float *y = out + (int64_t)n * C;
        float ss = 0.0f;
        for (int i = 0; i < C; i++) ss += x[i] * x[i];
        float r = 1.0f / sqrtf(ss / (float)C + eps);
        for (int i = 0; i < C; i++) y[i] = w[i] * (x[i] * r);
        rstd[n] = r;
    }
}

// y_i = w_i x_i r with r = (mean(x^2)+eps)^(-1/2), so
// dx_i = r w_i dy_i - (r^3 / C) x_i sum_j w_j dy_j x_j.
void rmsnorm_backward(float *dinp, const float *dout, const float *inp, const float *w,
                      const float *rstd, int N, int C) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (int64_t)n * C, *dy = dout + (int64_t)n * C;
        float *dx = dinp + (int64_t)n * C;
        float r = rstd[n];
        float dot = 0.0f;
        for (int i = 0; i < C; i++) dot += w[i] * dy[i] * x[i];
        float k = r * r * r * dot / (float)C;
        for (int i = 0; i < C; i++) dx[i] += r * w[i] * dy[i] - k * x[i];
    }
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
    int half = D / 2;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *c = cos_t + (int64_t)pos[n] * half, *s = sin_t + (int64_t)pos[n] * half;
        for (int h = 0; h < nh; h++) {
            float *v = x + (int64_t)n * nh * D + (int64_t)h * D;
            for (int j = 0; j < half; j++) {
                float a = v[j], b = v[j + half], sn = sign * s[j];
                v[j] = a * c[j] - b * sn;
                v[j + half] = b * c[j] + a * sn;
            }
        }
    }
}

void rope_forward(float *x, const int32_t *pos, const float *cos_t, const float *sin_t, int N,
                  int nh, int D) {
    rope_rotate(x, pos, cos_t, sin_t, N, nh, D, 1.0f);
}

void rope_backward(float *dx, const int32_t *pos, const float *cos_t, const float *sin_t, int N,
                   int nh, int D) {
    rope_rotate(dx, pos, cos_t, sin_t, N, nh, D, -1.0f);
}

void swiglu_forward(float *h, const float *g, const float *u, int64_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float sig = 1.0f / (1.0f + expf(-g[i]));
        h[i] = g[i] * sig * u[i];
    }
}

void swiglu_backward(float *dg, float *du, const float *dh, const float *g, const float *u,
                     int64_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float sig = 1.0f / (1.0f + expf(-g[i]));
        float silu = g[i] * sig;
        dg[i] += dh[i] * u[i] * sig * (1.0f + g[i] * (1.0f - sig));
        du[i] += dh[i] * silu;
    }
}

// sqrt(2/pi), the constant of the tanh approximation of GELU.
#define GELU_K 0.7978845608028654f

void geglu_forward(float *h, const float *g, const float *u, int64_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float x = g[i];
        float t = tanhf(GELU_K * (x + 0.044715f * x * x * x));
        h[i] = 0.5f * x * (1.0f + t) * u[i];
    }
}

void geglu_backward(float *dg, float *du, const float *dh, const float *g, const float *u,
                    int64_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float x = g[i];
        float t = tanhf(GELU_K * (x + 0.044715f * x * x * x));
        float gelu = 0.5f * x * (1.0f + t);
        float dgelu = 0.5f * (1.0f + t) +
                      0.5f * x * (1.0f - t * t) * GELU_K * (1.0f + 3.0f * 0.044715f * x * x);
        dg[i] += dh[i] * u[i] * dgelu;
        du[i] += dh[i] * gelu;
    }
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
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) x[i] *= s;
}

// exp(x) for the softmax of the cross-entropy, written so the compiler can vectorise the loops
// over the vocabulary (a call to libm's expf cannot be). x = n ln2 + r with |r| <= ln2/2, then a
// degree-6 polynomial for exp(r) (Taylor coefficients, relative error below 2e-7) scaled by 2^n
// through the exponent bits. Inputs are <= 0 here (logit - max), so only underflow is handled.
static inline float softmax_exp(float x) {
    x = x < -87.0f ? -87.0f : x;
    float n = __builtin_roundf(x * 1.44269504f);
    float r = x - n * 0.693145752f - n * 1.42860677e-06f;
    float p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    union {
        uint32_t u;
        float f;
    } scale = {.u = (uint32_t)((int32_t)n + 127) << 23};
    return p * scale.f;
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
            float mx = z[0];
            for (int i = 1; i < V; i++) mx = z[i] > mx ? z[i] : mx;
            double sum = 0.0;
#pragma omp simd reduction(+ : sum)
            for (int i = 0; i < V; i++) sum += (double)softmax_exp(z[i] - mx);
            float logsum = (float)log(sum) + mx;
            loss += (double)logsum - (double)z[t];
            count++;
            if (dz) {
#pragma omp simd
                for (int i = 0; i < V; i++) dz[i] = softmax_exp(z[i] - logsum) * grad_scale;
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
