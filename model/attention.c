#include "model/attention.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "model/ops_vec.h"

// Products of one tile are small (64 x 64 x D): one task per OpenMP thread, and the OpenMP
// build of OpenBLAS runs each product single-threaded inside the parallel loop. Every task
// writes rows no other task writes, and its sums run in tile order, so the result does not
// depend on which thread runs it or how many there are.

static int imin(int a, int b) { return a < b ? a : b; }
static int imax(int a, int b) { return a > b ? a : b; }

// A thread's scratch: score tile S (P in backward) and dP [tq, tk], then the running maximum
// m and sum l of the forward's rows [tq], then backward's D row [T]. Tiles shrink to T.
typedef struct {
    float *S, *dP, *m, *l, *Drow;
} tile_scratch;

static int64_t thread_floats(int T) {
    const int64_t tq = imin(ATTENTION_TILE_Q, T), tk = imin(ATTENTION_TILE_K, T);
    return 2 * tq * tk + 2 * tq + T;
}

static tile_scratch thread_scratch(float *scratch, int T) {
    const int64_t tq = imin(ATTENTION_TILE_Q, T), tk = imin(ATTENTION_TILE_K, T);
    float *w = scratch + omp_get_thread_num() * thread_floats(T);
    return (tile_scratch){w, w + tq * tk, w + 2 * tq * tk, w + 2 * tq * tk + tq,
                          w + 2 * tq * tk + 2 * tq};
}

int64_t attention_scratch_floats(int B, int T, int H, int D, int n_threads) {
    return thread_floats(T) * n_threads + 2 * (int64_t)B * H * T * D;
}

// Whether a query tile [i0, i0+nr) has a row that sees a key of [j0, j1): a row i sees keys
// [start[i], i], so it needs i >= j0 and start[i] < j1. start is any lower bound, so every row
// is checked; for causal, document and window starts the first row checked decides.
static int tile_needed(const int32_t *start, int i0, int nr, int j0, int j1) {
    for (int i = imax(i0, j0); i < i0 + nr; i++)
        if (start[i] < j1) return 1;
    return 0;
}

// One query tile of one head: rows i0..i0+nr-1. Pointers are at the head's first column of
// batch row b (q, out stride HD; k, v stride KD); start and lse are that row's / head's [T].
static void forward_tile(float *out, float *lse, tile_scratch ws, const float *q,
                         const float *k, const float *v, const int32_t *start, int T, int HD,
                         int KD, int D, int i0, int nr, float scale) {
    const ops_vec *kv = ops_vec_get();
    float *S = ws.S, *m = ws.m, *l = ws.l;
    int lo = start[i0];
    for (int r = 0; r < nr; r++) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
        memset(out + (int64_t)(i0 + r) * HD, 0, (size_t)D * sizeof(float));
        lo = imin(lo, start[i0 + r]);
    }
    const int i1 = i0 + nr;
    for (int j0 = lo / ATTENTION_TILE_K * ATTENTION_TILE_K; j0 < i1; j0 += ATTENTION_TILE_K) {
        const int nc = imin(ATTENTION_TILE_K, T - j0), j1 = j0 + nc;
        if (!tile_needed(start, i0, nr, j0, j1)) continue;
        // S [nr, nc] = scale * Q_i K_j^T
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nr, nc, D, scale,
                    q + (int64_t)i0 * HD, HD, k + (int64_t)j0 * KD, KD, 0.0f, S, nc);
        for (int r = 0; r < nr; r++) {
            const int i = i0 + r;
            float *s = S + (int64_t)r * nc;
            const int a = imax(start[i], j0) - j0, e = imin(i, j1 - 1) - j0;
            if (a > e) {  // this row sees none of the tile's keys
                memset(s, 0, (size_t)nc * sizeof(float));
                continue;
            }
            const float tmx = kv->max(s + a, e - a + 1);
            const float mx = tmx > m[r] ? tmx : m[r];
            // Online softmax: rescale what earlier tiles added to the new maximum.
            const float corr = ops_vec_expf(m[r] - mx);
            memset(s, 0, (size_t)a * sizeof(float));
            const float sum = kv->exp_shift(s + a, s + a, e - a + 1, mx, 1.0f);
            memset(s + e + 1, 0, (size_t)(nc - e - 1) * sizeof(float));
            l[r] = l[r] * corr + sum;
            m[r] = mx;
            if (corr != 1.0f) kv->scale(out + (int64_t)i * HD, D, corr);
        }
        // O_i [nr, D] += P V_j
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nr, D, nc, 1.0f, S, nc,
                    v + (int64_t)j0 * KD, KD, 1.0f, out + (int64_t)i0 * HD, HD);
    }
    for (int r = 0; r < nr; r++) {
        kv->scale(out + (int64_t)(i0 + r) * HD, D, 1.0f / l[r]);
        lse[i0 + r] = m[r] + logf(l[r]);
    }
}

void attention_forward(float *out, float *lse, float *scratch, int n_threads, const float *q,
                       const float *k, const float *v, const int32_t *start, int B, int T, int H,
                       int KV, int D) {
    const int HD = H * D, KD = KV * D, group = H / KV;
    const int n_tiles = (T + ATTENTION_TILE_Q - 1) / ATTENTION_TILE_Q;
    const float scale = 1.0f / sqrtf((float)D);
    // Later query tiles see more keys: dynamic scheduling keeps both threads busy to the end.
#pragma omp parallel for schedule(dynamic, 1) num_threads(n_threads)
    for (int task = 0; task < B * H * n_tiles; task++) {
        const int bh = task / n_tiles, i0 = task % n_tiles * ATTENTION_TILE_Q;
        const int b = bh / H, h = bh % H, g = h / group;
        forward_tile(out + (int64_t)b * T * HD + (int64_t)h * D, lse + (int64_t)bh * T,
                     thread_scratch(scratch, T), q + (int64_t)b * T * HD + (int64_t)h * D,
                     k + (int64_t)b * T * KD + (int64_t)g * D,
                     v + (int64_t)b * T * KD + (int64_t)g * D, start + (int64_t)b * T, T, HD, KD,
                     D, i0, imin(ATTENTION_TILE_Q, T - i0), scale);
    }
}

// One query head of one batch row, every tile pair it needs (pointers as in forward_tile):
// dq overwritten, the head's own dk_h and dv_h [T, D] written.
static void backward_head(float *dq, float *dk_h, float *dv_h, tile_scratch ws,
                          const float *dout, const float *out, const float *lse, const float *q,
                          const float *k, const float *v, const int32_t *start, int T, int HD,
                          int KD, int D, float scale) {
    const ops_vec *kv = ops_vec_get();
    float *P = ws.S, *dP = ws.dP, *Drow = ws.Drow;
    // D_i = rowsum(dO_i * O_i) = sum_s P_is dP_is: the softmax backward's row term.
    for (int t = 0; t < T; t++) {
        Drow[t] = kv->dot(dout + (int64_t)t * HD, out + (int64_t)t * HD, D);
        memset(dq + (int64_t)t * HD, 0, (size_t)D * sizeof(float));
    }
    memset(dk_h, 0, (size_t)T * D * sizeof(float));
    memset(dv_h, 0, (size_t)T * D * sizeof(float));
    for (int j0 = 0; j0 < T; j0 += ATTENTION_TILE_K) {
        const int nc = imin(ATTENTION_TILE_K, T - j0), j1 = j0 + nc;
        // Rows before j0 see no key of this tile.
        for (int i0 = j0 / ATTENTION_TILE_Q * ATTENTION_TILE_Q; i0 < T; i0 += ATTENTION_TILE_Q) {
            const int nr = imin(ATTENTION_TILE_Q, T - i0);
            if (!tile_needed(start, i0, nr, j0, j1)) continue;
            const float *qi = q + (int64_t)i0 * HD, *doi = dout + (int64_t)i0 * HD;
            // P [nr, nc] = exp(scale * Q_i K_j^T - lse_i), zero outside [start_i, i]
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nr, nc, D, scale, qi, HD,
                        k + (int64_t)j0 * KD, KD, 0.0f, P, nc);
            for (int r = 0; r < nr; r++) {
                const int i = i0 + r;
                float *p = P + (int64_t)r * nc;
                const int a = imax(start[i], j0) - j0, e = imin(i, j1 - 1) - j0;
                if (a > e) {
                    memset(p, 0, (size_t)nc * sizeof(float));
                    continue;
                }
                memset(p, 0, (size_t)a * sizeof(float));
                kv->exp_shift(p + a, p + a, e - a + 1, lse[i], 1.0f);
                memset(p + e + 1, 0, (size_t)(nc - e - 1) * sizeof(float));
            }
            // dV_j [nc, D] += P^T dO_i
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nc, D, nr, 1.0f, P, nc, doi, HD,
                        1.0f, dv_h + (int64_t)j0 * D, D);
            // dP [nr, nc] = dO_i V_j^T ; dS = P * (dP - D_i), in place of P
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nr, nc, D, 1.0f, doi, HD,
                        v + (int64_t)j0 * KD, KD, 0.0f, dP, nc);
            for (int r = 0; r < nr; r++) {
                float *p = P + (int64_t)r * nc;
                const float *dp = dP + (int64_t)r * nc;
                const float di = Drow[i0 + r];
                // A row that sees one key (its document's or window's first token, every row
                // at T = 1) has P = 1 whatever its score, so its scores get no gradient; dP - D_i
                // would instead leave the rounding difference of two orders of one sum, which
                // is all the dq and dk there are when every row is such a row.
                if (start[i0 + r] == i0 + r) {
                    memset(p, 0, (size_t)nc * sizeof(float));
                    continue;
                }
                kv->mul_sub(p, dp, di, nc);
            }
            // S = scale * Q K^T: dK_j [nc, D] += scale dS^T Q_i ; dQ_i [nr, D] += scale dS K_j
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nc, D, nr, scale, P, nc, qi, HD,
                        1.0f, dk_h + (int64_t)j0 * D, D);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nr, D, nc, scale, P, nc,
                        k + (int64_t)j0 * KD, KD, 1.0f, dq + (int64_t)i0 * HD, HD);
        }
    }
}

void attention_backward(float *dq, float *dk, float *dv, float *scratch, int n_threads,
                        const float *dout, const float *out, const float *lse, const float *q,
                        const float *k, const float *v, const int32_t *start, int B, int T, int H,
                        int KV, int D) {
    const int HD = H * D, KD = KV * D, group = H / KV;
    const float scale = 1.0f / sqrtf((float)D);
    const int64_t TD = (int64_t)T * D;
    float *dkv = scratch + thread_floats(T) * n_threads;  // [B, H, 2, T, D]: dk_h then dv_h
    const ops_vec *kv = ops_vec_get();
    // One task per (batch row, query head): the heads of a KV group would share dk and dv rows,
    // so each writes its own and they are added below in head order.
#pragma omp parallel for schedule(dynamic, 1) num_threads(n_threads)
    for (int bh = 0; bh < B * H; bh++) {
        const int b = bh / H, h = bh % H, g = h / group;
        const int64_t qo = (int64_t)b * T * HD + (int64_t)h * D;
        const int64_t ko = (int64_t)b * T * KD + (int64_t)g * D;
        backward_head(dq + qo, dkv + 2 * bh * TD, dkv + (2 * bh + 1) * TD,
                      thread_scratch(scratch, T), dout + qo, out + qo,
                      lse + (int64_t)bh * T, q + qo, k + ko, v + ko, start + (int64_t)b * T, T,
                      HD, KD, D, scale);
    }
#pragma omp parallel for schedule(static) num_threads(n_threads)
    for (int n = 0; n < B * T; n++) {
        const int b = n / T, t = n % T;
        for (int h = 0; h < H; h++) {
            const float *dkh = dkv + 2 * ((int64_t)b * H + h) * TD + (int64_t)t * D;
            const float *dvh = dkh + TD;
            float *dkr = dk + (int64_t)n * KD + (int64_t)(h / group) * D;
            float *dvr = dv + (int64_t)n * KD + (int64_t)(h / group) * D;
            kv->add(dkr, dkh, D);
            kv->add(dvr, dvh, D);
        }
    }
}
