// The projections of the training passes: a frozen product y = x W^T (+ b) with its LoRA
// branch, forward and backward, one target at a time (proj_forward / proj_backward), for a
// fused target of phi3 / gpt2 (proj_fused_lora_*), and for a group of separate targets that
// read the same input (proj_group_*: q/k/v after attn_norm, gate/up after mlp_norm), whose
// thin A products run as one sgemm. docs/training.md, "Fused LoRA A products", has the numbers.
#include <cblas.h>
#include <string.h>

#include "model/arch.h"
#include "model/lora.h"
#include "model/transformer.h"

static int lora_on(const lm_plan *p, lora_target t) { return p->lora && lora_enabled(p->lora, t); }

static int dropout_on(const lm_plan *p) {
    return p->training && p->lora && p->lora->cfg.dropout > 0.0f;
}

static uint64_t dropout_stream(const lm_plan *p, int l, lora_target t) {
    return (p->dropout_counter * (uint64_t)p->m->cfg.n_layers + (uint64_t)l) * LORA_N_TARGETS +
           (uint64_t)t;
}

// y[N,out] += LoRA(x) of target t, when it is on.
static void lora_branch_forward(lm_plan *p, float *y, const float *x, int l, lora_target t,
                                int in, int out) {
    if (!lora_on(p, t)) return;
    const lora_adapter *a = p->lora;
    const float *xd = x;
    if (dropout_on(p)) {
        lora_dropout_apply(p->xd, x, (int64_t)p->N * in, a->cfg.dropout, p->dropout_seed,
                           dropout_stream(p, l, t));
        xd = p->xd;
    }
    lora_forward(y, p->acts[l].lora_u[t], xd, lora_A(a, l, t), lora_B(a, l, t), a->scale, p->N,
                 in, out, a->cfg.r);
}

// y[N,out] = x W^T (+ b) + LoRA(x)
void proj_forward(lm_plan *p, float *y, const float *x, const weight_mat *W, const float *bias,
                  int l, lora_target t, int in, int out) {
    linear_forward(y, x, W, bias, p->N);
    lora_branch_forward(p, y, x, l, t, in, out);
}

// dx[N,in] += LoRA input gradient of target t, its A/B gradients accumulated, when it is on.
static void lora_branch_backward(lm_plan *p, float *dx, const float *dy, const float *x, int l,
                                 lora_target t, int in, int out) {
    if (!lora_on(p, t)) return;
    const lora_adapter *a = p->lora;
    const int64_t n = (int64_t)p->N * in;
    if (!dropout_on(p)) {
        lora_backward(dx, lora_dA(a, l, t), lora_dB(a, l, t), p->lora_du, dy, x,
                      p->acts[l].lora_u[t], lora_A(a, l, t), lora_B(a, l, t), a->scale, p->N, in,
                      out, a->cfg.r);
        return;
    }
    uint64_t stream = dropout_stream(p, l, t);
    lora_dropout_apply(p->xd, x, n, a->cfg.dropout, p->dropout_seed, stream);
    memset(p->dxd, 0, (size_t)n * sizeof(float));
    lora_backward(p->dxd, lora_dA(a, l, t), lora_dB(a, l, t), p->lora_du, dy, p->xd,
                  p->acts[l].lora_u[t], lora_A(a, l, t), lora_B(a, l, t), a->scale, p->N, in, out,
                  a->cfg.r);
    // The dropout mask is its own transpose: apply it to the gradient of the dropped input.
    lora_dropout_apply(p->dxd, p->dxd, n, a->cfg.dropout, p->dropout_seed, stream);
    cblas_saxpy((int)n, 1.0f, p->dxd, 1, dx, 1);
}

// dx[N,in] += dy W + LoRA input gradient; LoRA A/B gradients accumulated. frozen_dx 0 skips
// the frozen product dy W where nothing reads dx (the first layer: the embedding is frozen).
void proj_backward(lm_plan *p, float *dx, const float *dy, const float *x, const weight_mat *W,
                   int l, lora_target t, int in, int out, int frozen_dx) {
    if (frozen_dx) linear_backward(dx, dy, W, p->N);
    lora_branch_backward(p, dx, dy, x, l, t, in, out);
}

// The fused target's input after dropout (p->xd) or x itself.
static const float *fused_lora_input(lm_plan *p, const float *x, int l, lora_target t, int in) {
    if (!dropout_on(p)) return x;
    lora_dropout_apply(p->xd, x, (int64_t)p->N * in, p->lora->cfg.dropout, p->dropout_seed,
                       dropout_stream(p, l, t));
    return p->xd;
}

// u[N,r] = xd A^T once, then ys[i][N, w[i]] += scale u B_i^T with B_i the rows of B for part i.
void proj_fused_lora_forward(lm_plan *p, float *const *ys, const int *w, int k, const float *x,
                             int l, lora_target t, int in) {
    if (!lora_on(p, t)) return;
    const lora_adapter *a = p->lora;
    const int N = p->N, r = a->cfg.r;
    const float *xd = fused_lora_input(p, x, l, t, in);
    float *u = p->acts[l].lora_u[t];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, r, in, 1.0f, xd, in, lora_A(a, l, t),
                in, 0.0f, u, r);
    const float *B = lora_B(a, l, t);
    for (int i = 0; i < k; B += (int64_t)w[i] * r, i++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, w[i], r, a->scale, u, r, B, r,
                    1.0f, ys[i], w[i]);
}

// du = scale sum_i dys[i] B_i; dB_i += scale dys[i]^T u; dA += du^T xd; dxd += du A.
void proj_fused_lora_backward(lm_plan *p, float *dx, const float *const *dys, const int *w, int k,
                              const float *x, int l, lora_target t, int in) {
    if (!lora_on(p, t)) return;
    const lora_adapter *a = p->lora;
    const int N = p->N, r = a->cfg.r;
    const float *xd = fused_lora_input(p, x, l, t, in);
    const float *u = p->acts[l].lora_u[t];
    const float *B = lora_B(a, l, t);
    float *dB = lora_dB(a, l, t);
    for (int i = 0; i < k; B += (int64_t)w[i] * r, dB += (int64_t)w[i] * r, i++) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, r, w[i], a->scale, dys[i], w[i],
                    B, r, i ? 1.0f : 0.0f, p->lora_du, r);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, w[i], r, N, a->scale, dys[i], w[i],
                    u, r, 1.0f, dB, r);
    }
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, in, N, 1.0f, p->lora_du, r, xd, in,
                1.0f, lora_dA(a, l, t), in);
    if (!dropout_on(p)) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, in, r, 1.0f, p->lora_du, r,
                    lora_A(a, l, t), in, 1.0f, dx, in);
        return;
    }
    // As proj_backward: the gradient of the dropped input goes through the same mask.
    const int64_t n = (int64_t)N * in;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, in, r, 1.0f, p->lora_du, r,
                lora_A(a, l, t), in, 0.0f, p->dxd, in);
    lora_dropout_apply(p->dxd, p->dxd, n, a->cfg.dropout, p->dropout_seed, dropout_stream(p, l, t));
    cblas_saxpy((int)n, 1.0f, p->dxd, 1, dx, 1);
}

// The enabled targets of the group ts[0..k) whose A products run as one, as indices into ts;
// returns how many, or 0 when the group runs target by target: fewer than two enabled, an
// adapter with dropout (each target draws its own mask in training, so their inputs differ;
// the plan then has no buffers for a group), or p->lora_unfused.
static int group_fused(const lm_plan *p, const lora_target *ts, int k, int *idx) {
    if (!p->lora || p->lora->cfg.dropout > 0.0f || p->lora_unfused) return 0;
    int n = 0;
    for (int j = 0; j < k; j++)
        if (lora_on(p, ts[j])) idx[n++] = j;
    return n >= 2 ? n : 0;
}

// p->lora_acat [n r, in] = the A matrices of the fused targets, stacked in group order. The
// adapter's flat layout (A and B of each target side by side, the optimizer's vector) stays
// as it is: the gather moves n r in floats, nothing next to the products.
static void group_gather_A(lm_plan *p, const lora_target *ts, const int *idx, int n, int l,
                           int in) {
    const lora_adapter *a = p->lora;
    const size_t block = (size_t)a->cfg.r * in;
    for (int i = 0; i < n; i++)
        memcpy(p->lora_acat + i * block, lora_A(a, l, ts[idx[i]]), block * sizeof(float));
}

// ys[j][N, outs[j]] += LoRA_j(x[N, in]) for each enabled target ts[j]. Fused: u_cat[N, n r] =
// x A_cat^T in one sgemm (into p->lora_du), each target's u copied out of its column block
// into lora_u (backward reads it), then ys[j] += scale u_j B_j^T.
void proj_group_lora_forward(lm_plan *p, float *const *ys, const int *outs, const float *x, int l,
                             const lora_target *ts, int k, int in) {
    int idx[PROJ_GROUP_MAX];
    const int n = group_fused(p, ts, k, idx);
    if (!n) {
        for (int j = 0; j < k; j++) lora_branch_forward(p, ys[j], x, l, ts[j], in, outs[j]);
        return;
    }
    const lora_adapter *a = p->lora;
    const int N = p->N, r = a->cfg.r, R = n * r;
    group_gather_A(p, ts, idx, n, l, in);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, R, in, 1.0f, x, in, p->lora_acat, in,
                0.0f, p->lora_du, R);
    for (int i = 0; i < n; i++) {
        const lora_target t = ts[idx[i]];
        const int out = outs[idx[i]];
        float *u = p->acts[l].lora_u[t];
        for (int row = 0; row < N; row++)
            memcpy(u + (int64_t)row * r, p->lora_du + (int64_t)row * R + i * r,
                   (size_t)r * sizeof(float));
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, out, r, a->scale, u, r,
                    lora_B(a, l, t), r, 1.0f, ys[idx[i]], out);
    }
}

// The fused backward of the n >= 2 enabled targets ts[idx[0..n-1]]: each target's
// du_j = scale dys[j] B_j into column block j of du_cat [N, n r] (p->lora_du) and
// dB_j += scale dys[j]^T u_j, then one product dA_cat = du_cat^T x [n r, in] whose row blocks
// are added into each dA_j, and one dx += du_cat A_cat.
static void group_lora_backward_fused(lm_plan *p, float *dx, const float *const *dys,
                                      const int *outs, const float *x, int l,
                                      const lora_target *ts, const int *idx, int n, int in) {
    const lora_adapter *a = p->lora;
    const int N = p->N, r = a->cfg.r, R = n * r;
    for (int i = 0; i < n; i++) {
        const lora_target t = ts[idx[i]];
        const int out = outs[idx[i]];
        const float *dy = dys[idx[i]];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, r, out, a->scale, dy, out,
                    lora_B(a, l, t), r, 0.0f, p->lora_du + i * r, R);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, r, N, a->scale, dy, out,
                    p->acts[l].lora_u[t], r, 1.0f, lora_dB(a, l, t), r);
    }
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, R, in, N, 1.0f, p->lora_du, R, x, in,
                0.0f, p->lora_dacat, in);
    const int block = r * in;
    for (int i = 0; i < n; i++)
        cblas_saxpy(block, 1.0f, p->lora_dacat + (int64_t)i * block, 1,
                    lora_dA(a, l, ts[idx[i]]), 1);
    group_gather_A(p, ts, idx, n, l, in);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, in, R, 1.0f, p->lora_du, R,
                p->lora_acat, in, 1.0f, dx, in);
}

// dx[N, in] += the LoRA input gradients of the group's enabled targets, their A and B
// gradients accumulated: fused when group_fused says so, else target by target.
void proj_group_lora_backward(lm_plan *p, float *dx, const float *const *dys, const int *outs,
                              const float *x, int l, const lora_target *ts, int k, int in) {
    int idx[PROJ_GROUP_MAX];
    const int n = group_fused(p, ts, k, idx);
    if (!n) {
        for (int j = 0; j < k; j++) lora_branch_backward(p, dx, dys[j], x, l, ts[j], in, outs[j]);
        return;
    }
    group_lora_backward_fused(p, dx, dys, outs, x, l, ts, idx, n, in);
}

void proj_group_forward(lm_plan *p, float *const *ys, const float *x,
                        const weight_mat *const *Ws, const float *const *bs, int l,
                        const lora_target *ts, int k, int in) {
    int outs[PROJ_GROUP_MAX];
    for (int j = 0; j < k; j++) {
        outs[j] = (int)Ws[j]->rows;
        linear_forward(ys[j], x, Ws[j], bs ? bs[j] : NULL, p->N);
    }
    proj_group_lora_forward(p, ys, outs, x, l, ts, k, in);
}

void proj_group_backward(lm_plan *p, float *dx, const float *const *dys, const float *x,
                         const weight_mat *const *Ws, int l, const lora_target *ts, int k, int in,
                         int frozen_dx) {
    int idx[PROJ_GROUP_MAX], outs[PROJ_GROUP_MAX];
    const int n = group_fused(p, ts, k, idx);
    if (!n) {
        // Target by target, frozen then LoRA, the order (and sums) of the path before fusion.
        for (int j = 0; j < k; j++)
            proj_backward(p, dx, dys[j], x, Ws[j], l, ts[j], in, (int)Ws[j]->rows, frozen_dx);
        return;
    }
    for (int j = 0; j < k; j++) {
        outs[j] = (int)Ws[j]->rows;
        if (frozen_dx) linear_backward(dx, dys[j], Ws[j], p->N);
    }
    group_lora_backward_fused(p, dx, dys, outs, x, l, ts, idx, n, in);
}
