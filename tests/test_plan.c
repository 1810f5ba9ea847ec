// The arenas of the training plan (model/transformer.h) and the KV-cache decoder
// (model/decoder.h), for several shapes:
//   - lm_plan_bytes and decoder.arena_bytes equal a hand count of the buffers listed in the
//     headers, each rounded up to 64 bytes, so the size cannot drift from the carve;
//   - the buffers tile the arena exactly: aligned, disjoint, inside it, nothing left over;
//   - a training step (forward with gradient, backward, LoRA dropout, two documents per row)
//     overwrites every element of every plan buffer, and a full-context decode fills the cache:
//     no buffer is reserved and left unused.
// Built with MEDTUNE_SANITIZE, AddressSanitizer also proves the kernels stay inside the arena
// and out of the padding between slices (common/arena.h poisons it).
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/rng.h"
#include "common/strbuf.h"
#include "model/attention.h"
#include "model/decoder.h"
#include "model/lora.h"
#include "model/model.h"
#include "model/transformer.h"
#include "test_model.h"
#include "testlib.h"

#define ALIGN 64
#define SENTINEL 0xFF  // every byte: a float NaN and the int32 -1, values no kernel writes

typedef struct {
    const char *name;
    int C, F, L, H, KV, D, V;
    int bias;
    uint32_t targets;  // 0: no adapter
    int r;
    float dropout;
    int B, T;
    int gemma;  // gemma3 layers: q/k and post norms, GeGLU, sliding windows, local rope, softcap
    int gpt2;   // gpt2 layers: LayerNorm, biases, learned positions, an MLP without a gate
} plan_case;

#define ALL_TARGETS ((1u << LORA_QKV) - 1)  // the seven projections of the Llama family
#define T_BIT(t) (1u << (t))

static const plan_case CASES[] = {
    {"base llama, no adapter", 32, 64, 2, 4, 4, 8, 50, 0, 0, 0, 0.0f, 1, 7, 0, 0},
    {"qwen2 GQA 6/2, biases, all targets", 48, 80, 2, 6, 2, 12, 97, 1, ALL_TARGETS, 4, 0.0f, 2,
     16, 0, 0},
    {"q,v targets with dropout, H*D wider than C and F", 36, 28, 2, 4, 1, 16, 61, 0,
     T_BIT(LORA_Q) | T_BIT(LORA_V), 3, 0.1f, 3, 5, 0, 0},
    {"o_proj target with dropout, H*D widest input", 36, 28, 1, 4, 2, 16, 61, 0, T_BIT(LORA_O), 2,
     0.2f, 2, 6, 0, 0},
    {"MLP targets with dropout, F widest", 40, 120, 3, 5, 5, 8, 45, 0,
     T_BIT(LORA_GATE) | T_BIT(LORA_UP) | T_BIT(LORA_DOWN), 8, 0.05f, 4, 3, 0, 0},
    {"all targets with dropout, one row of one token", 24, 40, 1, 2, 1, 12, 33, 1, ALL_TARGETS,
     2, 0.1f, 1, 1, 0, 0},
    {"gemma3 (layers 0, 2 sliding), all targets, dropout", 40, 56, 3, 4, 2, 12, 71, 0,
     ALL_TARGETS, 4, 0.1f, 2, 20, 1, 0},
    {"gpt2, c_attn c_proj c_fc with dropout (no gate buffers)", 40, 76, 2, 4, 4, 10, 53, 1,
     T_BIT(LORA_QKV) | T_BIT(LORA_O) | T_BIT(LORA_UP) | T_BIT(LORA_DOWN), 3, 0.1f, 2, 9, 0, 1},
};

// Bytes of a buffer of n elements in the arena: rounded up to the alignment.
static size_t pad(int64_t n, size_t elem) {
    return ((size_t)n * elem + ALIGN - 1) / ALIGN * ALIGN;
}

static void make_model(model *m, const plan_case *k) {
    model_config c = {0};
    c.arch = k->bias ? MODEL_ARCH_QWEN2 : MODEL_ARCH_LLAMA;
    c.hidden_size = k->C;
    c.intermediate_size = k->F;
    c.n_layers = k->L;
    c.n_heads = k->H;
    c.n_kv_heads = k->KV;
    c.head_dim = k->D;
    c.vocab_size = k->V;
    c.max_position_embeddings = 128;
    c.rms_norm_eps = 1e-6f;
    c.rope_theta = 10000.0f;
    c.attention_bias = k->bias;
    c.bos_token_id = -1;
    if (k->gemma) {
        c.arch = MODEL_ARCH_GEMMA3;
        c.qk_norm = c.post_norms = c.gelu_mlp = 1;
        c.embed_scale = sqrtf((float)k->C);
        c.q_scale = 0.8f;
        c.final_softcap = 3.0f;
        c.sliding_window = 5;
        c.rope_local_theta = 500.0f;
        c.sliding_layer[0] = c.sliding_layer[2] = 1;
    }
    if (k->gpt2) {  // as the gpt2 loaders set it (model/model_load_hf.c)
        c.arch = MODEL_ARCH_GPT2;
        c.out_bias = 1;
        c.tie_word_embeddings = 1;
    }
    if (model_config_validate(&c, k->name) || model_alloc(m, &c))
        test_fail("%s: %s", k->name, err_msg());
    test_model_randomize(m, 3);
}

// Widest input among the enabled targets: C for q, k, v, gate, up; H*D for o; F for down.
static int64_t widest_lora_input(const plan_case *k) {
    const int64_t in[LORA_N_TARGETS] = {k->C, k->C, k->C, (int64_t)k->H * k->D, k->C, k->C, k->F,
                                        k->C, k->C};
    int64_t w = 0;
    for (int t = 0; t < LORA_N_TARGETS; t++)
        if ((k->targets >> t) & 1u && in[t] > w) w = in[t];
    return w;
}

// The plan's buffers as listed in model/transformer.h, counted by hand.
static size_t expected_plan_bytes(const plan_case *k, int threads, int recompute) {
    const int64_t B = k->B, T = k->T, N = B * T, C = k->C, F = k->F, L = k->L, V = k->V;
    const int64_t QD = (int64_t)k->H * k->D, KD = (int64_t)k->KV * k->D, D = k->D;
    const int64_t r = k->targets ? k->r : 0;
    int n_lora = 0;
    for (int t = 0; t < LORA_N_TARGETS; t++) n_lora += (k->targets >> t) & 1u;
    // N rows in the fewest equal chunks of at most LM_LOGITS_CHUNK_FLOATS / V rows
    int64_t max_rows = LM_LOGITS_CHUNK_FLOATS / V;
    if (max_rows < 1) max_rows = 1;
    const int64_t n_chunks = (N + max_rows - 1) / max_rows;
    const int64_t chunk_rows = (N + n_chunks - 1) / n_chunks;
    const size_t f = sizeof(float);
    // per layer: x; and per layer, or once with recompute: xmid, rstd1 rstd2, q att, k v, lse,
    // g u, lora_u per target
    // (gpt2: u only, its MLP has no gate)
    const int64_t n_mlp = k->gpt2 ? 1 : 2;
    size_t set = pad(N * C, f) + 2 * pad(N, f) + 2 * pad(N * QD, f) + 2 * pad(N * KD, f) +
                 pad(B * k->H * T, f) + (size_t)n_mlp * pad(N * F, f) +
                 (size_t)n_lora * pad(N * r, f);
    // gemma3: q_raw k_raw, rstd_q rstd_k, o_raw f_raw, rstd_o rstd_f
    if (k->gemma)
        set += pad(N * QD, f) + pad(N * KD, f) + pad(N * k->H, f) + pad(N * k->KV, f) +
               2 * pad(N * C, f) + 2 * pad(N, f);
    size_t bytes = (size_t)L * pad(N * C, f) + (size_t)(recompute ? 1 : L) * set;
    bytes += 4 * pad(N * C, f) + pad(N, f) + pad(N * F, f);  // x_out xnf dxnf xn, rstdf, h
    // backward scratch: dres dxn tmp, dq datt, dk dv, dg du dh (gpt2: no dg)
    bytes += 3 * pad(N * C, f) + 2 * pad(N * QD, f) + 2 * pad(N * KD, f) +
             (size_t)(n_mlp + 1) * pad(N * F, f);
    bytes += pad(attention_scratch_floats(k->B, k->T, k->H, k->D, threads), f);
    // lora_du, [N, r] per target of the larger fused group (q/k/v or gate/up, no dropout), and
    // that group's lora_acat lora_dacat [group r, C]
    int n_qkv = 0, n_gu = 0;
    for (int t = LORA_Q; t <= LORA_V; t++) n_qkv += (k->targets >> t) & 1u;
    for (int t = LORA_GATE; t <= LORA_UP; t++) n_gu += (k->targets >> t) & 1u;
    const int64_t group =
        k->dropout == 0.0f && (n_qkv > 1 || n_gu > 1) ? (n_qkv > n_gu ? n_qkv : n_gu) : 1;
    bytes += pad(N * r * group, f);
    if (group > 1) bytes += 2 * pad(group * r * C, f);
    if (k->targets && k->dropout > 0.0f) bytes += 2 * pad(N * widest_lora_input(k), f);  // xd dxd
    bytes += pad(chunk_rows * V, f);                                     // logits
    bytes += 2 * pad(T * (D / 2), f);                                    // rope_cos rope_sin
    bytes += 2 * pad(N, sizeof(int32_t));                                // pos start
    // gemma3: the sliding layers' rope tables and starts, the soft-capped logits chunk
    if (k->gemma)
        bytes += 2 * pad(T * (D / 2), f) + pad(N, sizeof(int32_t)) + pad(chunk_rows * V, f);
    return bytes;
}

typedef struct {
    const char *name;
    void *ptr;
    size_t bytes;
} slice;

typedef struct {
    slice *s;
    size_t n, cap;
} slice_list;

static void slice_add(slice_list *sl, const char *name, void *ptr, int64_t n, size_t elem) {
    slice *s = vec_grow(sl->s, &sl->cap, sl->n + 1, sizeof *s);
    if (!s) test_fail("%s", err_msg());
    sl->s = s;
    sl->s[sl->n++] = (slice){name, ptr, (size_t)n * elem};
}

static void slice_list_free(slice_list *sl) {
    free(sl->s);
    memset(sl, 0, sizeof *sl);
}

static int slice_cmp(const void *a, const void *b) {
    uintptr_t x = (uintptr_t)((const slice *)a)->ptr, y = (uintptr_t)((const slice *)b)->ptr;
    return (x > y) - (x < y);
}

// The slices lie inside [base, base + bytes), start aligned, do not overlap and, rounded up,
// add up to the whole arena. Empty slices must be NULL.
static void check_tiling(const char *what, slice_list *sl, const void *base, size_t bytes) {
    const uintptr_t lo = (uintptr_t)base, hi = lo + bytes;
    size_t total = 0;
    slice_list nonempty = {0};
    for (size_t i = 0; i < sl->n; i++) {
        const slice *s = &sl->s[i];
        if (s->bytes == 0) {
            if (s->ptr) test_fail("%s: empty buffer %s is not NULL", what, s->name);
            continue;
        }
        const uintptr_t p = (uintptr_t)s->ptr;
        if (!s->ptr || p % ALIGN)
            test_fail("%s: %s at %p is not %d-byte aligned", what, s->name, s->ptr, ALIGN);
        if (p < lo || p + s->bytes > hi)
            test_fail("%s: %s (%zu bytes) lies outside the %zu-byte arena", what, s->name,
                      s->bytes, bytes);
        total += pad((int64_t)s->bytes, 1);
        slice_add(&nonempty, s->name, s->ptr, (int64_t)s->bytes, 1);
    }
    qsort(nonempty.s, nonempty.n, sizeof(slice), slice_cmp);
    for (size_t i = 0; i + 1 < nonempty.n; i++) {
        const slice *a = &nonempty.s[i], *b = &nonempty.s[i + 1];
        if ((uintptr_t)a->ptr + a->bytes > (uintptr_t)b->ptr)
            test_fail("%s: %s overlaps %s", what, a->name, b->name);
    }
    if (total != bytes)
        test_fail("%s: the buffers cover %zu of the arena's %zu bytes", what, total, bytes);
    slice_list_free(&nonempty);
}

static void plan_slices(slice_list *sl, const lm_plan *p) {
    const model_config *c = &p->m->cfg;
    const int64_t B = p->B, T = p->T, N = p->N, C = c->hidden_size, F = c->intermediate_size;
    const int64_t H = c->n_heads, D = c->head_dim, QD = H * D, KD = (int64_t)c->n_kv_heads * D;
    const int64_t r = p->lora ? p->lora->cfg.r : 0;
    const int64_t G = c->arch == MODEL_ARCH_GPT2 ? 0 : F;  // gate width
    const size_t f = sizeof(float);
    int64_t max_in = 0;
    if (p->lora && p->lora->cfg.dropout > 0.0f)
        for (int t = 0; t < LORA_N_TARGETS; t++)
            if (lora_enabled(p->lora, t) && p->lora->slots[t].in > max_in)
                max_in = p->lora->slots[t].in;
    for (int l = 0; l < c->n_layers; l++) {
        const layer_acts *s = &p->acts[l];
        slice_add(sl, "x", s->x, N * C, f);
        if (p->recompute && l > 0) {
            // Every layer shares layer 0's set.
            const layer_acts *s0 = &p->acts[0];
            int same = s->rstd1 == s0->rstd1 && s->q == s0->q && s->k == s0->k &&
                       s->v == s0->v && s->lse == s0->lse && s->att == s0->att &&
                       s->xmid == s0->xmid && s->rstd2 == s0->rstd2 && s->g == s0->g &&
                       s->u == s0->u && s->q_raw == s0->q_raw && s->k_raw == s0->k_raw &&
                       s->rstd_q == s0->rstd_q && s->rstd_k == s0->rstd_k &&
                       s->o_raw == s0->o_raw && s->f_raw == s0->f_raw &&
                       s->rstd_o == s0->rstd_o && s->rstd_f == s0->rstd_f;
            for (int t = 0; t < LORA_N_TARGETS; t++) same &= s->lora_u[t] == s0->lora_u[t];
            if (!same) test_fail("recompute: layer %d does not share layer 0's buffers", l);
            continue;
        }
        slice_add(sl, "rstd1", s->rstd1, N, f);
        slice_add(sl, "q", s->q, N * QD, f);
        slice_add(sl, "k", s->k, N * KD, f);
        slice_add(sl, "v", s->v, N * KD, f);
        slice_add(sl, "lse", s->lse, B * H * T, f);
        slice_add(sl, "att", s->att, N * QD, f);
        slice_add(sl, "xmid", s->xmid, N * C, f);
        slice_add(sl, "rstd2", s->rstd2, N, f);
        slice_add(sl, "g", s->g, N * G, f);
        slice_add(sl, "u", s->u, N * F, f);
        for (int t = 0; t < LORA_N_TARGETS; t++)
            slice_add(sl, LORA_TARGET_NAMES[t], s->lora_u[t],
                      p->lora && lora_enabled(p->lora, t) ? N * r : 0, f);
        const int qk = c->qk_norm, post = c->post_norms;
        slice_add(sl, "q_raw", s->q_raw, qk ? N * QD : 0, f);
        slice_add(sl, "k_raw", s->k_raw, qk ? N * KD : 0, f);
        slice_add(sl, "rstd_q", s->rstd_q, qk ? N * H : 0, f);
        slice_add(sl, "rstd_k", s->rstd_k, qk ? N * c->n_kv_heads : 0, f);
        slice_add(sl, "o_raw", s->o_raw, post ? N * C : 0, f);
        slice_add(sl, "f_raw", s->f_raw, post ? N * C : 0, f);
        slice_add(sl, "rstd_o", s->rstd_o, post ? N : 0, f);
        slice_add(sl, "rstd_f", s->rstd_f, post ? N : 0, f);
    }
    slice_add(sl, "x_out", p->x_out, N * C, f);
    slice_add(sl, "xnf", p->xnf, N * C, f);
    slice_add(sl, "rstdf", p->rstdf, N, f);
    slice_add(sl, "dxnf", p->dxnf, N * C, f);
    slice_add(sl, "xn", p->xn, N * C, f);
    slice_add(sl, "h", p->h, N * F, f);
    slice_add(sl, "dres", p->dres, N * C, f);
    slice_add(sl, "dxn", p->dxn, N * C, f);
    slice_add(sl, "tmp", p->tmp, N * C, f);
    slice_add(sl, "dq", p->dq, N * QD, f);
    slice_add(sl, "datt", p->datt, N * QD, f);
    slice_add(sl, "dk", p->dk, N * KD, f);
    slice_add(sl, "dv", p->dv, N * KD, f);
    slice_add(sl, "dg", p->dg, N * G, f);
    slice_add(sl, "du", p->du, N * F, f);
    slice_add(sl, "dh", p->dh, N * F, f);
    slice_add(sl, "attn_scratch", p->attn_scratch,
              attention_scratch_floats(p->B, p->T, (int)H, (int)D, p->max_threads), f);
    int64_t n_qkv = 0, n_gu = 0;
    for (int t = LORA_Q; t <= LORA_V; t++) n_qkv += p->lora && lora_enabled(p->lora, t);
    for (int t = LORA_GATE; t <= LORA_UP; t++) n_gu += p->lora && lora_enabled(p->lora, t);
    // max_in is 0 without dropout: the group of the larger fused set of targets, as carved
    const int64_t group =
        max_in == 0 && (n_qkv > 1 || n_gu > 1) ? (n_qkv > n_gu ? n_qkv : n_gu) : 1;
    slice_add(sl, "lora_du", p->lora_du, N * r * group, f);
    slice_add(sl, "lora_acat", p->lora_acat, group > 1 ? group * r * C : 0, f);
    slice_add(sl, "lora_dacat", p->lora_dacat, group > 1 ? group * r * C : 0, f);
    slice_add(sl, "xd", p->xd, N * max_in, f);
    slice_add(sl, "dxd", p->dxd, N * max_in, f);
    slice_add(sl, "logits", p->logits, (int64_t)p->chunk_rows * c->vocab_size, f);
    slice_add(sl, "rope_cos", p->rope_cos, T * (D / 2), f);
    slice_add(sl, "rope_sin", p->rope_sin, T * (D / 2), f);
    slice_add(sl, "pos", p->pos, N, sizeof(int32_t));
    slice_add(sl, "start", p->start, N, sizeof(int32_t));
    const int local = c->rope_local_theta > 0;
    slice_add(sl, "rope_cos_local", p->rope_cos_local, local ? T * (D / 2) : 0, f);
    slice_add(sl, "rope_sin_local", p->rope_sin_local, local ? T * (D / 2) : 0, f);
    slice_add(sl, "start_sw", p->start_sw, c->sliding_window > 0 ? N : 0, sizeof(int32_t));
    slice_add(sl, "logits_capped", p->logits_capped,
              c->final_softcap > 0 ? (int64_t)p->chunk_rows * c->vocab_size : 0, f);
}

static int is_rope(const slice *s) { return !strncmp(s->name, "rope_", 5); }

// Every 4-byte element of a slice differs from the sentinel.
static void check_written(const char *what, const slice *s) {
    const uint32_t *w = s->ptr;
    for (size_t i = 0; i < s->bytes / 4; i++)
        if (w[i] == 0xFFFFFFFFu)
            test_fail("%s: %s element %zu of %zu was never written", what, s->name, i,
                      s->bytes / 4);
}

// One training step on a plan whose buffers (not the rope tables, filled at init) were set to
// the sentinel: every element must have been written.
static void check_step_touches_all(const plan_case *k, lm_plan *p) {
    slice_list sl = {0};
    plan_slices(&sl, p);
    for (size_t i = 0; i < sl.n; i++)
        if (sl.s[i].bytes && !is_rope(&sl.s[i])) memset(sl.s[i].ptr, SENTINEL, sl.s[i].bytes);
    const int N = p->N, V = k->V;
    int32_t *tokens = malloc((size_t)N * sizeof *tokens);
    int32_t *targets = malloc((size_t)N * sizeof *targets);
    int32_t *docs = malloc((size_t)N * sizeof *docs);
    rng_state r;
    rng_init(&r, 5);
    for (int n = 0; n < N; n++) {
        tokens[n] = (int32_t)rng_below(&r, (uint64_t)V);
        targets[n] = n % 5 == 4 ? -1 : (int32_t)rng_below(&r, (uint64_t)V);
        docs[n] = n % k->T < k->T / 2 ? 0 : 1;
    }
    lm_batch b = {tokens, targets, NULL, docs};
    p->training = 1;
    p->dropout_seed = 9;
    p->dropout_counter = 1;
    int64_t n_targets = 0;
    double loss = lm_forward(p, &b, 1, 1.0f / (float)N, &n_targets);
    lm_backward(p);
    if (!isfinite(loss)) test_fail("%s: training step loss is %g", k->name, loss);
    for (size_t i = 0; i < sl.n; i++)
        if (sl.s[i].bytes) check_written(k->name, &sl.s[i]);
    slice_list_free(&sl);
    free(tokens);
    free(targets);
    free(docs);
}

// The decoder's buffers as listed in model/decoder.h, counted by hand.
static size_t expected_decoder_bytes(const plan_case *k, int n_ctx) {
    const int64_t R = DECODER_MAX_ROWS, T = n_ctx, C = k->C, F = k->F, L = k->L, H = k->H;
    const int64_t QD = H * k->D, KD = (int64_t)k->KV * k->D, r = k->targets ? k->r : 0;
    const int64_t RP = (R + 15) / 16 * 16;  // prefill rows padded to a multiple of 16
    const size_t f = sizeof(float);
    return 2 * pad(L * T * KD, f)                                    // cache k v
           + 3 * pad(R * C, f) + 2 * pad(RP * QD, f) + 2 * pad(RP * KD, f)  // x xn tmp, q att, k v
           + 3 * pad(R * F, f) + pad(R * r, f)                       // g u h, lora_u
           + pad(H * R * T, f) + 2 * pad(T * (k->D / 2), f)          // scores, rope tables
           + (k->gemma ? 2 * pad(T * (k->D / 2), f) + pad(R * H, f) : 0)  // local rope, rstd
           + pad(H * RP, f)                                          // lse
           + pad(attention_scratch_floats(1, (int)RP, (int)H, k->D, omp_get_max_threads()), f)
           + pad(RP, sizeof(int32_t)) + pad(8 * (int64_t)k->V, f);  // start, head_rows
}

static void check_decoder(const plan_case *k, const model *m, const lora_adapter *a) {
    const int n_ctx = DECODER_MAX_ROWS + 11;  // a prefill of two chunks, then single steps
    decoder d;
    if (decoder_init(&d, m, a, n_ctx)) test_fail("%s: %s", k->name, err_msg());
    size_t want = expected_decoder_bytes(k, n_ctx);
    if (d.arena_bytes != want)
        test_fail("%s: decoder arena is %zu bytes, the buffers need %zu", k->name, d.arena_bytes,
                  want);
    const model_config *c = &m->cfg;
    const int64_t R = DECODER_MAX_ROWS, C = c->hidden_size, F = c->intermediate_size;
    const int64_t H = c->n_heads, D = c->head_dim, QD = H * D, KD = (int64_t)c->n_kv_heads * D;
    const int64_t RP = (R + 15) / 16 * 16;
    const int64_t cache = (int64_t)c->n_layers * n_ctx * KD, r = a ? a->cfg.r : 0;
    const size_t f = sizeof(float);
    slice_list sl = {0};
    slice_add(&sl, "cache.k", d.cache.k, cache, f);
    slice_add(&sl, "cache.v", d.cache.v, cache, f);
    slice_add(&sl, "x", d.x, R * C, f);
    slice_add(&sl, "xn", d.xn, R * C, f);
    slice_add(&sl, "tmp", d.tmp, R * C, f);
    slice_add(&sl, "q", d.q, RP * QD, f);
    slice_add(&sl, "att", d.att, RP * QD, f);
    slice_add(&sl, "k", d.k, RP * KD, f);
    slice_add(&sl, "v", d.v, RP * KD, f);
    slice_add(&sl, "g", d.g, R * F, f);
    slice_add(&sl, "u", d.u, R * F, f);
    slice_add(&sl, "h", d.h, R * F, f);
    slice_add(&sl, "lora_u", d.lora_u, R * r, f);
    slice_add(&sl, "scores", d.scores, H * R * n_ctx, f);
    slice_add(&sl, "rope_cos", d.rope_cos, n_ctx * (D / 2), f);
    slice_add(&sl, "rope_sin", d.rope_sin, n_ctx * (D / 2), f);
    const int local = c->rope_local_theta > 0;
    slice_add(&sl, "rope_cos_local", d.rope_cos_local, local ? n_ctx * (D / 2) : 0, f);
    slice_add(&sl, "rope_sin_local", d.rope_sin_local, local ? n_ctx * (D / 2) : 0, f);
    slice_add(&sl, "rstd_heads", d.rstd_heads, c->qk_norm ? R * H : 0, f);
    slice_add(&sl, "lse", d.lse, H * RP, f);
    slice_add(&sl, "attn_scratch", d.attn_scratch,
              attention_scratch_floats(1, (int)RP, (int)H, (int)D, omp_get_max_threads()), f);
    slice_add(&sl, "start", d.start, RP, sizeof(int32_t));
    slice_add(&sl, "head_rows", d.head_rows, 8 * (int64_t)c->vocab_size, f);
    check_tiling(k->name, &sl, d.arena, d.arena_bytes);

    // Filling the whole context writes every cached key and value.
    memset(d.cache.k, SENTINEL, (size_t)cache * f);
    memset(d.cache.v, SENTINEL, (size_t)cache * f);
    const int prompt = n_ctx - 3;
    int32_t ids[DECODER_MAX_ROWS + 11];
    for (int i = 0; i < n_ctx; i++) ids[i] = (int32_t)((i * 7 + 3) % c->vocab_size);
    float *logits = malloc((size_t)c->vocab_size * sizeof *logits);
    if (decoder_forward(&d, ids, prompt, logits, 0)) test_fail("%s: %s", k->name, err_msg());
    for (int i = prompt; i < n_ctx; i++)
        if (decoder_forward(&d, ids + i, 1, logits, 0)) test_fail("%s: %s", k->name, err_msg());
    for (int i = 0; i < c->vocab_size; i++)
        if (!isfinite(logits[i])) test_fail("%s: decoder logit %d is %g", k->name, i, logits[i]);
    check_written(k->name, &sl.s[0]);
    check_written(k->name, &sl.s[1]);
    slice_list_free(&sl);
    free(logits);
    decoder_free(&d);
}

// Plans at 1 and 3 OpenMP threads (the attention scratch is per thread), with and without
// recompute; the step runs at 1, where every thread's scratch is used.
static void check_case(const plan_case *k) {
    model m;
    make_model(&m, k);
    lora_adapter a;
    const lora_adapter *lora = NULL;
    if (k->targets) {
        lora_config lc = {.r = k->r, .alpha = 2.0f * k->r, .dropout = k->dropout,
                          .targets = k->targets};
        if (lora_adapter_init(&a, &m.cfg, &lc)) test_fail("%s: %s", k->name, err_msg());
        rng_state r;
        rng_init(&r, 4);
        test_fill_uniform(a.params, a.n_params, 0.1f, 0.0f, &r);
        lora = &a;
    }
    const int saved = omp_get_max_threads();
    const int threads[] = {3, 1};
    for (int i = 0; i < 4; i++) {
        const int th = threads[i % 2], rec = i / 2;
        omp_set_num_threads(th);
        lm_plan p;
        if (lm_plan_init_recompute(&p, &m, lora, k->B, k->T, rec))
            test_fail("%s: %s", k->name, err_msg());
        size_t want = expected_plan_bytes(k, th, rec);
        if (lm_plan_bytes(&p) != want)
            test_fail("%s, %d threads, recompute %d: lm_plan_bytes %zu, the buffers need %zu",
                      k->name, th, rec, lm_plan_bytes(&p), want);
        if (lm_plan_size(&m, lora, k->B, k->T, rec) != want)
            test_fail("%s: lm_plan_size %zu, the plan has %zu bytes", k->name,
                      lm_plan_size(&m, lora, k->B, k->T, rec), want);
        slice_list sl = {0};
        plan_slices(&sl, &p);
        check_tiling(k->name, &sl, p.arena, p.arena_bytes);
        slice_list_free(&sl);
        if (th == 1) check_step_touches_all(k, &p);
        lm_plan_free(&p);
    }
    omp_set_num_threads(saved);
    check_decoder(k, &m, lora);
    printf("%-52s B=%d T=%-2d plan %zu bytes, decoder %zu bytes: ok\n", k->name, k->B, k->T,
           expected_plan_bytes(k, 1, 0), expected_decoder_bytes(k, DECODER_MAX_ROWS + 11));
    if (lora) lora_adapter_free(&a);
    model_free(&m);
}

// The benchmark shape (SmolLM2-135M, all targets, B=4, T=256): size and tiling only. Nothing
// is computed, so the untouched weights and the 1.4 GB arena are never paged in.
static void check_benchmark_shape(void) {
    const plan_case k = {"SmolLM2-135M shape, all targets", 576, 1536, 30, 9, 3, 64, 49152, 0,
                         ALL_TARGETS, 16, 0.0f, 4, 256, 0, 0};
    model m;
    model_config c = {.arch = MODEL_ARCH_LLAMA, .hidden_size = k.C, .intermediate_size = k.F,
                      .n_layers = k.L, .n_heads = k.H, .n_kv_heads = k.KV, .head_dim = k.D,
                      .vocab_size = k.V, .max_position_embeddings = 8192, .rms_norm_eps = 1e-5f,
                      .rope_theta = 100000.0f, .tie_word_embeddings = 1, .bos_token_id = 1};
    lora_adapter a;
    lora_config lc = {.r = k.r, .alpha = 32.0f, .targets = k.targets};
    lm_plan p;
    if (model_alloc(&m, &c) || lora_adapter_init(&a, &c, &lc) || lm_plan_init(&p, &m, &a, k.B, k.T))
        test_fail("%s: %s", k.name, err_msg());
    size_t want = expected_plan_bytes(&k, p.max_threads, 0);
    if (lm_plan_bytes(&p) != want)
        test_fail("%s: lm_plan_bytes %zu, the buffers need %zu", k.name, lm_plan_bytes(&p), want);
    slice_list sl = {0};
    plan_slices(&sl, &p);
    check_tiling(k.name, &sl, p.arena, p.arena_bytes);
    slice_list_free(&sl);
    printf("%s, B=4 T=256, %d threads: plan %zu bytes (%.1f MB): ok\n", k.name, p.max_threads,
           want, want / 1e6);
    lm_plan_free(&p);
    lora_adapter_free(&a);
    model_free(&m);
}

int main(void) {
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) check_case(&CASES[i]);
    check_benchmark_shape();
    printf("all plan and decoder arenas match their buffer lists\n");
    return 0;
}
