// Training-step throughput of medtune on a model shape with random weights:
// forward + loss + backward + clip + AdamW per step, LoRA on the chosen targets.
// Prints one JSON line: tokens/s (median step), peak RSS, activation bytes, the model FLOPs per
// token and the GFLOP/s they make, the GFLOP/s of plain sgemm on the step's largest products
// (same threads, same run), and a profile of one step by op class: each class of ops run alone
// at the step's shapes for every layer, its time next to the measured step.
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "common/clock.h"
#include "common/error.h"
#include "common/rng.h"
#include "optim/adamw.h"
#include "model/attention.h"
#include "model/arch.h"
#include "model/lora.h"
#include "model/ops.h"
#include "model/ops_vec.h"
#include "model/transformer.h"
#include "model/weight.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// The seven separate projections of the Llama family, which the benchmark model has (the
// fused targets of phi3 and gpt2 come after them in lora_target).
enum { N_PROJ = LORA_DOWN + 1 };

// Model FLOPs of one trained token (recompute's extra forward not counted): the frozen
// products forward and their input gradients (no weight gradients), the LoRA products (forward
// 2r(in+out), backward 4r(in+out)), the head and causal attention over (T+1)/2 keys on
// average (two products forward, five backward).
static double flops_per_token(const model_config *c, int r, int T) {
    const double C = c->hidden_size, F = c->intermediate_size, QD = (double)c->n_heads * c->head_dim;
    const double KD = (double)c->n_kv_heads * c->head_dim;
    const double ins[N_PROJ] = {C, C, C, QD, C, C, F};
    const double outs[N_PROJ] = {QD, KD, KD, C, F, F, C};
    double base = 0, lora = 0;
    for (int t = 0; t < N_PROJ; t++) {
        base += ins[t] * outs[t];
        lora += 6.0 * r * (ins[t] + outs[t]);
    }
    const double attn = 14.0 * QD * (T + 1) / 2.0;
    return c->n_layers * (4.0 * base + lora + attn) + 4.0 * (double)c->vocab_size * C;
}

// GFLOP/s of cblas_sgemm on the step's largest products: up/gate (N x F x C), down (N x C x F),
// q/o (N x C x C), the head (rows x V x C); the median of 5 runs of each, then their median.
static double sgemm_gflops(int N, const model_config *c) {
    const int C = c->hidden_size, F = c->intermediate_size, V = c->vocab_size;
    const int rows = N < 682 ? N : 682;
    const int shapes[4][3] = {{N, F, C}, {N, C, F}, {N, C, C}, {rows, V, C}};
    double rates[4];
    for (int s = 0; s < 4; s++) {
        const int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
        float *a = calloc((size_t)m * k, sizeof(float)), *b = calloc((size_t)n * k, sizeof(float));
        float *y = calloc((size_t)m * n, sizeof(float));
        for (size_t i = 0; i < (size_t)m * k; i++) a[i] = (float)(i % 7) * 0.01f;
        for (size_t i = 0; i < (size_t)n * k; i++) b[i] = (float)(i % 5) * 0.01f;
        double t[5];
        for (int i = 0; i < 5; i++) {
            double t0 = clock_now_s();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, a, k, b, k, 0.0f,
                        y, n);
            t[i] = clock_now_s() - t0;
        }
        qsort(t, 5, sizeof(double), cmp_double);
        rates[s] = 2.0 * m * n * k / t[2] / 1e9;
        free(a), free(b), free(y);
    }
    qsort(rates, 4, sizeof(double), cmp_double);
    return (rates[1] + rates[2]) / 2.0;
}

enum { P_PROJ, P_LORA, P_ATTN, P_HEAD, P_ELEM, P_OPT, P_N };
static const char *const P_NAMES[P_N] = {"frozen_proj", "lora", "attention", "head_ce",
                                         "elementwise", "optimizer"};

// One step's ops by class, each class alone over every layer at the plan's shapes, on the
// plan's own buffers (after a real step, so they hold a step's values).
static void profile_step(double *sec, lm_plan *p, const model *m, lora_adapter *lora,
                         adamw_state *opt, const int32_t *targets) {
    const model_config *c = &m->cfg;
    const int N = p->N, C = c->hidden_size, F = c->intermediate_size, D = c->head_dim;
    const int H = c->n_heads, KV = c->n_kv_heads, QD = H * D, KD = KV * D, V = c->vocab_size;
    const int r = lora->cfg.r, L = c->n_layers;
    const int ins[N_PROJ] = {C, C, C, QD, C, C, F};
    const int outs[N_PROJ] = {QD, KD, KD, C, F, F, C};
    float *xs[N_PROJ] = {p->xn, p->xn, p->xn, p->acts[0].att, p->xn, p->xn, p->h};
    float *ys[N_PROJ] = {p->dq, p->dk, p->dv, p->tmp, p->dg, p->du, p->tmp};
    float *dxs[N_PROJ] = {p->dxn, p->dxn, p->dxn, p->datt, p->dxn, p->dxn, p->dh};
    const layer_weights *w = &m->layers[0];
    const weight_mat *Ws[N_PROJ] = {&w->wq,     &w->wk, &w->wv,    &w->wo,
                                            &w->w_gate, &w->w_up, &w->w_down};
    double t0 = clock_now_s();
    for (int l = 0; l < L; l++)
        for (int t = 0; t < N_PROJ; t++) {
            linear_forward(ys[t], xs[t], Ws[t], NULL, N);
            linear_backward(dxs[t], ys[t], Ws[t], N);
        }
    sec[P_PROJ] = clock_now_s() - t0;
    // As the step runs them: q/k/v and gate/up as groups (their A products fused, model/proj.c),
    // o and down alone.
    static const lora_target qkv[] = {LORA_Q, LORA_K, LORA_V}, gate_up[] = {LORA_GATE, LORA_UP};
    t0 = clock_now_s();
    for (int l = 0; l < L; l++) {
        proj_group_lora_forward(p, ys, outs, p->xn, 0, qkv, 3, C);
        proj_group_lora_backward(p, p->dxn, (const float *const *)ys, outs, p->xn, 0, qkv, 3, C);
        proj_group_lora_forward(p, ys + LORA_GATE, outs + LORA_GATE, p->xn, 0, gate_up, 2, C);
        proj_group_lora_backward(p, p->dxn, (const float *const *)ys + LORA_GATE,
                                 outs + LORA_GATE, p->xn, 0, gate_up, 2, C);
        for (int i = 0; i < 2; i++) {
            const lora_target t = i ? LORA_DOWN : LORA_O;
            lora_forward(ys[t], p->acts[0].lora_u[t], xs[t], lora_A(lora, 0, t),
                         lora_B(lora, 0, t), lora->scale, N, ins[t], outs[t], r);
            lora_backward(dxs[t], lora_dA(lora, 0, t), lora_dB(lora, 0, t), p->lora_du, ys[t],
                          xs[t], p->acts[0].lora_u[t], lora_A(lora, 0, t), lora_B(lora, 0, t),
                          lora->scale, N, ins[t], outs[t], r);
        }
    }
    sec[P_LORA] = clock_now_s() - t0;
    layer_acts *s = &p->acts[0];
    t0 = clock_now_s();
    for (int l = 0; l < L; l++) {
        attention_forward(s->att, s->lse, p->attn_scratch, p->max_threads, s->q, s->k, s->v,
                          p->start, p->B, p->T, H, KV, D);
        attention_backward(p->dq, p->dk, p->dv, p->attn_scratch, p->max_threads, p->datt, s->att,
                           s->lse, s->q, s->k, s->v, p->start, p->B, p->T, H, KV, D);
    }
    sec[P_ATTN] = clock_now_s() - t0;
    t0 = clock_now_s();
    int64_t n_tgt = 0;
    for (int n0 = 0; n0 < N; n0 += p->chunk_rows) {
        const int rows = N - n0 < p->chunk_rows ? N - n0 : p->chunk_rows;
        weight_matmul_forward(p->logits, p->xnf + (int64_t)n0 * C, &m->lm_head, NULL, rows);
        crossentropy_forward_backward(p->logits, p->logits, targets + n0, rows, V, 1.0f, &n_tgt);
        weight_matmul_backward(p->dxnf + (int64_t)n0 * C, p->logits, &m->lm_head, rows);
    }
    sec[P_HEAD] = clock_now_s() - t0;
    t0 = clock_now_s();
    for (int l = 0; l < L; l++) {
        for (int k = 0; k < 2; k++) {  // two norms, forward and backward (plus the recompute)
            rmsnorm_forward(p->xn, s->rstd1, s->x, w->attn_norm, N, C, c->rms_norm_eps);
            rmsnorm_forward(p->xn, s->rstd1, s->x, w->attn_norm, N, C, c->rms_norm_eps);
            rmsnorm_backward(p->dres, p->dxn, s->x, w->attn_norm, s->rstd1, N, C);
        }
        rope_forward(s->q, p->pos, p->rope_cos, p->rope_sin, N, H, D);
        rope_forward(s->k, p->pos, p->rope_cos, p->rope_sin, N, KV, D);
        rope_backward(s->q, p->pos, p->rope_cos, p->rope_sin, N, H, D);
        rope_backward(s->k, p->pos, p->rope_cos, p->rope_sin, N, KV, D);
        swiglu_forward(p->h, s->g, s->u, (int64_t)N * F);
        swiglu_forward(p->h, s->g, s->u, (int64_t)N * F);
        swiglu_backward(p->dg, p->du, p->dh, s->g, s->u, (int64_t)N * F);
    }
    sec[P_ELEM] = clock_now_s() - t0;
    t0 = clock_now_s();
    grad_clip_global_norm(lora->grads, lora->n_params, 1.0f);
    adamw_step(opt, lora->params, lora->grads, 1e-4f);
    sec[P_OPT] = clock_now_s() - t0;
}

int main(int argc, char **argv) {
    model_config c = {.arch = MODEL_ARCH_LLAMA, .hidden_size = 576, .intermediate_size = 1536,
                      .n_layers = 30, .n_heads = 9, .n_kv_heads = 3, .head_dim = 64,
                      .vocab_size = 49152, .max_position_embeddings = 8192, .rms_norm_eps = 1e-5f,
                      .rope_theta = 100000.0f, .tie_word_embeddings = 1, .bos_token_id = 1};
    int B = 4, T = 256, steps = 5, r = 16, recompute = 0, profile = 1;
    float alpha = 32.0f;
    const char *model_path = NULL;  // --model: a file's weights, kept as stored, not random
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i];
        int v = atoi(argv[i + 1]);
        if (!strcmp(k, "--model")) model_path = argv[i + 1];
        else if (!strcmp(k, "--batch")) B = v;
        else if (!strcmp(k, "--seq")) T = v;
        else if (!strcmp(k, "--steps")) steps = v;
        else if (!strcmp(k, "--layers")) c.n_layers = v;
        else if (!strcmp(k, "--hidden")) c.hidden_size = v;
        else if (!strcmp(k, "--intermediate")) c.intermediate_size = v;
        else if (!strcmp(k, "--heads")) c.n_heads = v;
        else if (!strcmp(k, "--kv-heads")) c.n_kv_heads = v;
        else if (!strcmp(k, "--head-dim")) c.head_dim = v;
        else if (!strcmp(k, "--vocab")) c.vocab_size = v;
        else if (!strcmp(k, "--rank")) r = v;
        else if (!strcmp(k, "--recompute")) recompute = v;
        // --profile 0: no profile (it costs about one more step: a 7B-shaped step takes
        // minutes); its fields are then 0.
        else if (!strcmp(k, "--profile")) profile = v;
        else {
            fprintf(stderr, "bench_train: unknown option %s\n", k);
            return 2;
        }
    }
    model m;
    lora_adapter lora;
    lm_plan plan;
    adamw_state opt;
    lora_config lc = {.r = r, .alpha = alpha, .targets = (1u << LORA_N_TARGETS) - 1};
    if (model_path ? model_load(&m, model_path) : model_alloc(&m, &c)) {
        fprintf(stderr, "bench_train: %s\n", err_msg());
        return 1;
    }
    if (model_path) c = m.cfg;
    if (lora_adapter_init(&lora, &c, &lc) ||
        lm_plan_init_recompute(&plan, &m, &lora, B, T, recompute) ||
        adamw_init(&opt, &(adamw_config){1e-4f, 0.9f, 0.999f, 1e-8f, 0.0f}, lora.n_params)) {
        fprintf(stderr, "bench_train: %s\n", err_msg());
        return 1;
    }
    rng_state rng;
    rng_init(&rng, 1);
    if (!model_path)
        for (size_t i = 0; i < m.n_params; i++) m.arena[i] = (rng_uniform(&rng) - 0.5f) * 0.1f;
    lora_adapter_init_peft(&lora, 2);
    int N = B * T;
    int32_t *tokens = malloc(sizeof(int32_t) * N), *targets = malloc(sizeof(int32_t) * N);
    for (int i = 0; i < N; i++) {
        tokens[i] = (int32_t)rng_below(&rng, (uint64_t)c.vocab_size);
        targets[i] = (int32_t)rng_below(&rng, (uint64_t)c.vocab_size);
    }
    lm_batch batch = {.tokens = tokens, .targets = targets};
    // The first step warms up caches and page faults; --steps 0 times that one step alone (for
    // windows whose step takes minutes: peak RSS needs one step, not a median).
    const int warm = steps > 0;
    if (!warm) steps = 1;
    double *times = calloc((size_t)steps, sizeof(double));
    double loss = 0;
    for (int s = 0; s < steps + warm; s++) {
        double t0 = clock_now_s();
        memset(lora.grads, 0, lora.n_params * sizeof(float));
        int64_t n_tgt = 0;
        loss = lm_forward(&plan, &batch, 1, 1.0f / (float)N, &n_tgt) / (double)n_tgt;
        lm_backward(&plan);
        grad_clip_global_norm(lora.grads, lora.n_params, 1.0f);
        adamw_step(&opt, lora.params, lora.grads, 1e-4f);
        if (s >= warm) times[s - warm] = clock_now_s() - t0;
    }
    qsort(times, (size_t)steps, sizeof(double), cmp_double);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);  // before the profile, which touches no new memory anyway
    const double step = times[steps / 2], tok_s = N / step;
    const double gflops = flops_per_token(&c, r, T) * tok_s / 1e9;
    double prof[P_N] = {0};
    if (profile) profile_step(prof, &plan, &m, &lora, &opt, targets);
    const double sgemm = sgemm_gflops(N, &c);
    printf("{\"impl\": \"medtune\", \"isa\": \"%s\", \"batch\": %d, \"seq\": %d, \"recompute\": %d, "
           "\"threads\": %d, \"tok_per_s\": %.1f, \"step_s\": %.3f, \"peak_rss_gb\": %.2f, "
           "\"activations_gb\": %.2f, \"weights_gb\": %.2f, \"loss\": %.4f, "
           "\"gflop_per_token\": %.3f, \"gflop_s\": %.1f, \"sgemm_gflop_s\": %.1f, "
           "\"attention_share\": %.3f, \"profile_s\": {",
           ops_vec_get()->isa, B, T, recompute, omp_get_max_threads(), tok_s, step, ru.ru_maxrss * 1024.0 / 1e9,
           lm_plan_bytes(&plan) / 1e9, model_memory_bytes(&m) / 1e9, loss,
           flops_per_token(&c, r, T) / 1e9, gflops, sgemm, prof[P_ATTN] / step);
    for (int i = 0; i < P_N; i++) printf("%s\"%s\": %.3f", i ? ", " : "", P_NAMES[i], prof[i]);
    printf("}}\n");
    free(times);
    free(tokens);
    free(targets);
    adamw_free(&opt);
    lm_plan_free(&plan);
    lora_adapter_free(&lora);
    model_free(&m);
    return isfinite(loss) ? 0 : 1;
}
