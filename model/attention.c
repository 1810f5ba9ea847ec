#include "model/attention.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

// The per-head products are small (T x T x D): one head per OpenMP thread, and the OpenMP
// build of OpenBLAS runs each product single-threaded inside the parallel loop.

void attention_forward(float *out, float *probs, const float *q, const float *k, const float *v,
                       const int32_t *start, int B, int T, int H, int KV, int D) {
    const int HD = H * D, KD = KV * D, group = H / KV;
    const float scale = 1.0f / sqrtf((float)D);
#pragma omp parallel for schedule(dynamic, 1)
    for (int bh = 0; bh < B * H; bh++) {
        int b = bh / H, h = bh % H, g = h / group;
        const float *qb = q + (int64_t)b * T * HD + (int64_t)h * D;
        const float *kb = k + (int64_t)b * T * KD + (int64_t)g * D;
        const float *vb = v + (int64_t)b * T * KD + (int64_t)g * D;
        float *p = probs + (int64_t)bh * T * T;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, D, scale, qb, HD, kb, KD, 0.0f,
                    p, T);
        for (int t = 0; t < T; t++) {
            float *row = p + (int64_t)t * T;
            int s0 = start[(int64_t)b * T + t];
            float mx = -INFINITY;
            for (int s = s0; s <= t; s++) mx = row[s] > mx ? row[s] : mx;
            float sum = 0.0f;
            for (int s = s0; s <= t; s++) {
                row[s] = expf(row[s] - mx);
                sum += row[s];
            }
            float inv = 1.0f / sum;
            for (int s = 0; s < s0; s++) row[s] = 0.0f;
            for (int s = s0; s <= t; s++) row[s] *= inv;
            for (int s = t + 1; s < T; s++) row[s] = 0.0f;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, D, T, 1.0f, p, T, vb, KD, 0.0f,
                    out + (int64_t)b * T * HD + (int64_t)h * D, HD);
    }
}

int64_t attention_scratch_floats(int T) { return (int64_t)T * T; }

void attention_backward(float *dq, float *dk, float *dv, float *scratch, int n_threads,
                        const float *dout, const float *probs, const float *q, const float *k,
                        const float *v, const int32_t *start, int B, int T, int H, int KV, int D) {
    const int HD = H * D, KD = KV * D, group = H / KV;
    const float scale = 1.0f / sqrtf((float)D);
    // Heads of one KV group accumulate into the same dk/dv rows, so a task is one (b, kv head).
#pragma omp parallel for schedule(dynamic, 1) num_threads(n_threads)
    for (int bg = 0; bg < B * KV; bg++) {
        int b = bg / KV, g = bg % KV;
        float *ds = scratch + (int64_t)omp_get_thread_num() * T * T;
        const float *kb = k + (int64_t)b * T * KD + (int64_t)g * D;
        const float *vb = v + (int64_t)b * T * KD + (int64_t)g * D;
        float *dkb = dk + (int64_t)b * T * KD + (int64_t)g * D;
        float *dvb = dv + (int64_t)b * T * KD + (int64_t)g * D;
        for (int h = g * group; h < (g + 1) * group; h++) {
            const float *p = probs + ((int64_t)b * H + h) * T * T;
            const float *qb = q + (int64_t)b * T * HD + (int64_t)h * D;
            const float *dob = dout + (int64_t)b * T * HD + (int64_t)h * D;
            float *dqb = dq + (int64_t)b * T * HD + (int64_t)h * D;
            // dP = dO V^T ; dV += P^T dO
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, D, 1.0f, dob, HD, vb, KD,
                        0.0f, ds, T);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, D, T, 1.0f, p, T, dob, HD,
                        1.0f, dvb, KD);
            // softmax backward: dS = P * (dP - sum_s dP*P), zero outside the allowed range
            for (int t = 0; t < T; t++) {
                const float *pr = p + (int64_t)t * T;
                float *dr = ds + (int64_t)t * T;
                int s0 = start[(int64_t)b * T + t];
                float dot = 0.0f;
                for (int s = s0; s <= t; s++) dot += pr[s] * dr[s];
                for (int s = 0; s < s0; s++) dr[s] = 0.0f;
                for (int s = s0; s <= t; s++) dr[s] = pr[s] * (dr[s] - dot);
                for (int s = t + 1; s < T; s++) dr[s] = 0.0f;
            }
            // S = scale * Q K^T: dQ = scale * dS K ; dK += scale * dS^T Q
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, D, T, scale, ds, T, kb, KD,
                        0.0f, dqb, HD);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, D, T, scale, ds, T, qb, HD,
                        1.0f, dkb, KD);
        }
    }
}
