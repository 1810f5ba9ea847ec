// Generation tests.
//   test_generate reference MODEL_DIR...  greedy decode equals each model folder's
//       REFERENCE_greedy.json (an independent forward: a stdlib one in ../shared's models, the
//       PyTorch twin for the random model of tests/generate/check_reference.py): every id, the
//       decoded text, and the logits at positions 0..2 within 1e-4.
//   test_generate cache [MODEL...]     the KV-cache decoder equals a full recompute with
//       lm_logits (proven equal to the PyTorch twin) at every prefill row and every step, with
//       a non-zero LoRA adapter, and runs exactly one position per step: always on a random
//       in-memory Qwen2-style model (GQA, q/k/v biases, head_dim != hidden/heads, llama3 rope),
//       then on each MODEL that exists (../shared's models are absent on a fresh clone).
//   test_generate sampler               sampling statistics and determinism on a tiny vocabulary.
//   test_generate stream TOKENIZER...    the incremental detokenizer on text whose characters
//       are split across byte tokens: every piece is whole UTF-8 and they add up to decode().
//       Each TOKENIZER that exists is checked; skipped only when none does.
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileio.h"
#include "common/rng.h"
#include "tests/testlib.h"
#include "generate/generate.h"
#include "model/lora.h"
#include "model/model.h"
#include "model/transformer.h"

#define TOL_LOGITS 1e-4

// ---------------------------------------------------------------- reference

static cJSON *read_json(const char *path) {
    char *text = NULL;
    size_t len = 0;
    if (file_read_all(path, &text, &len)) test_fail("%s", err_msg());
    cJSON *j = cJSON_ParseWithLength(text, len);
    free(text);
    if (!j) test_fail("%s: not JSON", path);
    return j;
}

static int32_t *json_ids(const cJSON *arr, int *n) {
    *n = cJSON_GetArraySize(arr);
    int32_t *ids = malloc((size_t)(*n > 0 ? *n : 1) * sizeof *ids);
    int i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, arr) ids[i++] = (int32_t)x->valuedouble;
    return ids;
}

static void compare_logits_json(const float *logits, const cJSON *ref, int V, const char *what) {
    if (cJSON_GetArraySize(ref) != V) test_fail("%s: reference has %d logits, model V=%d", what, cJSON_GetArraySize(ref), V);
    double worst = 0.0;
    int at = 0, i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, ref) {
        double d = fabs((double)logits[i] - x->valuedouble);
        if (d > worst) worst = d, at = i;
        i++;
    }
    printf("  %s: max |diff| %.2e (at id %d)\n", what, worst, at);
    // The reference is rounded to 5 decimals: allow that rounding on top of the tolerance.
    if (worst > TOL_LOGITS + 5e-6) test_fail("%s: logit %d differs by %.3e", what, at, worst);
}

static int run_reference(const char *dir) {
    char path[4200];
    snprintf(path, sizeof path, "%s/REFERENCE_greedy.json", dir);
    if (!path_exists(path)) test_fail("%s is absent", path);
    cJSON *ref = read_json(path);
    int n_in, n_ref;
    int32_t *input = json_ids(cJSON_GetObjectItem(ref, "input_ids"), &n_in);
    int32_t *greedy = json_ids(cJSON_GetObjectItem(ref, "greedy_ids"), &n_ref);
    const char *text = cJSON_GetStringValue(cJSON_GetObjectItem(ref, "greedy_text"));

    model m;
    if (model_load(&m, dir)) test_fail("%s", err_msg());
    tokenizer *tok = tokenizer_load(dir);
    if (!tok) test_fail("%s", err_msg());
    const int V = m.cfg.vocab_size;

    // Step by step through the decoder: ids and the logits at positions 0..2.
    decoder d;
    if (decoder_init(&d, &m, NULL, n_in + n_ref)) test_fail("%s", err_msg());
    float *logits = malloc((size_t)V * sizeof *logits);
    if (decoder_forward(&d, input, n_in, logits, 0)) test_fail("%s", err_msg());
    for (int k = 0; k < n_ref; k++) {
        int pos = n_in - 1 + k;
        if (pos <= 2) {
            char key[32], what[4200];
            snprintf(key, sizeof key, "logits_pos%d", pos);
            snprintf(what, sizeof what, "%s logits_pos%d", dir, pos);
            compare_logits_json(logits, cJSON_GetObjectItem(ref, key), V, what);
        }
        int32_t next = logits_argmax(logits, V);
        if (next != greedy[k]) test_fail("%s: greedy token %d is %d, reference %d", dir, k, next, greedy[k]);
        if (k + 1 < n_ref && decoder_forward(&d, &next, 1, logits, 0)) test_fail("%s", err_msg());
    }
    if (d.n_positions != n_in + n_ref - 1)
        test_fail("%s: %lld positions computed, expected %d", dir, (long long)d.n_positions, n_in + n_ref - 1);
    decoder_free(&d);

    // The library entry point: same ids, and the streamed text equals the reference text.
    generate_options o;
    generate_options_default(&o, &m, tok);
    o.max_new = n_ref;
    generate_result res;
    if (generate_ids(&m, NULL, tok, input, (size_t)n_in, &o, NULL, NULL, &res)) test_fail("%s", err_msg());
    if ((int)res.ids.len != n_ref || memcmp(res.ids.data, greedy, (size_t)n_ref * sizeof *greedy))
        test_fail("%s: generate_ids gave %zu ids differing from the reference", dir, res.ids.len);
    char *decoded;
    if (tokenizer_decode(tok, greedy, (size_t)n_ref, 1, &decoded, NULL)) test_fail("%s", err_msg());
    if (strcmp(res.text, decoded))
        test_fail("%s: streamed text differs from decode():\n%s\n---\n%s", dir, res.text, decoded);
    free(decoded);
    // The reference joins the token pieces as llama2.c does, keeping the leading space that
    // SentencePiece decoding (HF, and medtune) strips from the first word.
    if (text && text[0] == ' ' && res.text[0] != ' ') text++;
    if (text && strcmp(res.text, text))
        test_fail("%s: streamed text differs from greedy_text:\n%s\n---\n%s", dir, res.text, text);
    if (res.stop != GENERATE_STOP_LENGTH) test_fail("%s: stop %s, expected length", dir, generate_stop_name(res.stop));
    printf("%s: %d greedy tokens and the text equal the reference\n", dir, n_ref);
    generate_result_free(&res);
    free(logits);
    free(input);
    free(greedy);
    cJSON_Delete(ref);
    tokenizer_free(tok);
    model_free(&m);
    return 0;
}

// ---------------------------------------------------------------- cache vs recompute

static void fill(float *x, size_t n, float scale, float offset, rng_state *r) {
    for (size_t i = 0; i < n; i++) x[i] = offset + scale * (2.0f * rng_uniform(r) - 1.0f);
}

// A small random Qwen2-style model: GQA 6/2, head_dim 12 != 48/6, q/k/v biases, llama3 rope.
static void random_model(model *m) {
    model_config c = {0};
    c.arch = MODEL_ARCH_QWEN2;
    c.hidden_size = 48;
    c.intermediate_size = 80;
    c.n_layers = 2;
    c.n_heads = 6;
    c.n_kv_heads = 2;
    c.head_dim = 12;
    c.vocab_size = 97;
    c.max_position_embeddings = 256;
    c.rms_norm_eps = 1e-6f;
    c.rope_theta = 10000.0f;
    c.rope_scaling = ROPE_SCALING_LLAMA3;
    c.rope_factor = 8.0f;
    c.rope_low_freq_factor = 1.0f;
    c.rope_high_freq_factor = 4.0f;
    c.rope_original_max_position = 64;
    c.attention_bias = 1;
    c.bos_token_id = -1;
    if (model_config_validate(&c, "random") || model_alloc(m, &c)) test_fail("%s", err_msg());
    rng_state r;
    rng_init(&r, 7);
    fill(m->arena, m->n_params, 0.15f, 0.0f, &r);
    fill(m->final_norm, (size_t)c.hidden_size, 0.1f, 1.0f, &r);
    for (int l = 0; l < c.n_layers; l++) {
        fill(m->layers[l].attn_norm, (size_t)c.hidden_size, 0.1f, 1.0f, &r);
        fill(m->layers[l].mlp_norm, (size_t)c.hidden_size, 0.1f, 1.0f, &r);
    }
}

// Full recompute of the logits of the last position of ids[0..n).
static void recompute_last(const model *m, const lora_adapter *a, const int32_t *ids, int n,
                           float *all, float *last) {
    lm_plan p;
    if (lm_plan_init(&p, m, a, 1, n)) test_fail("%s", err_msg());
    lm_batch b = {ids, NULL, NULL, NULL};
    lm_logits(&p, &b, all);
    memcpy(last, all + (int64_t)(n - 1) * m->cfg.vocab_size, (size_t)m->cfg.vocab_size * sizeof *last);
    lm_plan_free(&p);
}

static int run_cache(const char *path) {
    model m;
    if (path) {
        if (model_load(&m, path)) test_fail("%s", err_msg());
    } else {
        random_model(&m);
    }
    const char *name = path ? path : "random qwen2";
    const int V = m.cfg.vocab_size;
    lora_adapter a;
    lora_config lc = {.r = 4, .alpha = 8.0f, .targets = (1u << LORA_N_TARGETS) - 1};
    if (lora_adapter_init(&a, &m.cfg, &lc)) test_fail("%s", err_msg());
    rng_state r;
    rng_init(&r, 11);
    fill(a.params, a.n_params, 0.1f, 0.0f, &r);

    // A prompt longer than one prefill chunk, then greedy steps.
    const int P = DECODER_MAX_ROWS + 9, steps = 24, total = P + steps;
    int32_t *ids = malloc((size_t)total * sizeof *ids);
    for (int i = 0; i < P; i++) ids[i] = (int32_t)rng_below(&r, (uint64_t)V);
    float *all = malloc((size_t)total * V * sizeof *all);
    float *prefill = malloc((size_t)P * V * sizeof *prefill);
    float *step = malloc((size_t)V * sizeof *step), *ref = malloc((size_t)V * sizeof *ref);

    decoder d;
    if (decoder_init(&d, &m, &a, total)) test_fail("%s", err_msg());
    if (decoder_forward(&d, ids, P, prefill, 1)) test_fail("%s", err_msg());
    recompute_last(&m, &a, ids, P, all, ref);
    double worst = max_abs_diff(prefill, all, (size_t)P * V);
    printf("%s: prefill of %d rows (chunks of %d): max |diff| %.2e vs lm_logits\n", name, P,
           DECODER_MAX_ROWS, worst);
    if (worst > TOL_LOGITS) test_fail("%s: prefill logits differ from lm_logits by %.3e", name, worst);
    if (d.n_positions != P) test_fail("%s: prefill computed %lld positions, expected %d", name, (long long)d.n_positions, P);
    memcpy(step, prefill + (int64_t)(P - 1) * V, (size_t)V * sizeof *step);

    double worst_step = 0.0;
    for (int k = 0; k < steps; k++) {
        int n = P + k;
        ids[n] = logits_argmax(step, V);
        if (decoder_forward(&d, ids + n, 1, step, 0)) test_fail("%s", err_msg());
        if (d.n_positions != n + 1)
            test_fail("%s: step %d: %lld positions computed in all, expected %d (one per step)",
                      name, k, (long long)d.n_positions, n + 1);
        recompute_last(&m, &a, ids, n + 1, all, ref);
        double diff = max_abs_diff(step, ref, (size_t)V);
        if (diff > worst_step) worst_step = diff;
        if (diff > TOL_LOGITS) test_fail("%s: step %d: cached logits differ from recompute by %.3e", name, k, diff);
    }
    printf("%s: %d cached steps with LoRA: max |diff| %.2e vs full recompute, 1 position each\n",
           name, steps, worst_step);

    // A second decoder fed one token at a time agrees with the chunked prefill.
    decoder_reset(&d);
    for (int i = 0; i < P; i++)
        if (decoder_forward(&d, ids + i, 1, step, 0)) test_fail("%s", err_msg());
    worst = max_abs_diff(step, prefill + (int64_t)(P - 1) * V, (size_t)V);
    if (worst > TOL_LOGITS) test_fail("%s: token-by-token prefill differs from chunked by %.3e", name, worst);

    // Refusals: past the context, and ids outside the vocabulary.
    int32_t bad = V;
    if (decoder_forward(&d, &bad, 1, step, 0) == 0) test_fail("%s: id %d accepted", name, bad);
    decoder_reset(&d);
    if (decoder_forward(&d, ids, total, NULL, 0)) test_fail("%s", err_msg());
    if (decoder_forward(&d, ids, 1, step, 0) == 0) test_fail("%s: a token past the context was accepted", name);
    printf("  refused: %s\n", err_msg());

    decoder_free(&d);
    free(ids);
    free(all);
    free(prefill);
    free(step);
    free(ref);
    lora_adapter_free(&a);
    model_free(&m);
    return 0;
}

// ---------------------------------------------------------------- sampler

#define SV 6

static void softmax(const float *z, float t, double *p, int n) {
    double mx = z[0], s = 0;
    for (int i = 1; i < n; i++) mx = z[i] > mx ? z[i] : mx;
    for (int i = 0; i < n; i++) s += p[i] = exp(((double)z[i] - mx) / t);
    for (int i = 0; i < n; i++) p[i] /= s;
}

// Pearson chi-square of counts against probabilities p (cells with p == 0 must be empty).
static double chi_square(const long *counts, const double *p, int n, long total, int *dof) {
    double chi = 0;
    *dof = -1;
    for (int i = 0; i < n; i++) {
        if (p[i] == 0) {
            if (counts[i]) test_fail("token %d drawn %ld times outside the nucleus", i, counts[i]);
            continue;
        }
        double e = p[i] * (double)total;
        chi += (counts[i] - e) * (counts[i] - e) / e;
        (*dof)++;
    }
    return chi;
}

static void check_distribution(const float *z, float temp, float top_p, const double *expect) {
    sampler s;
    if (sampler_init(&s, SV, temp, top_p, 1234)) test_fail("%s", err_msg());
    const long draws = 200000;
    long counts[SV] = {0};
    for (long i = 0; i < draws; i++) counts[sampler_sample(&s, z)]++;
    sampler_free(&s);
    int dof;
    double chi = chi_square(counts, expect, SV, draws, &dof);
    // 99.99th percentile of chi-square with up to 5 degrees of freedom is < 26: with the fixed
    // seed this is deterministic, and a wrong distribution (even 1% off) lands far above it.
    printf("  T=%g top_p=%g: chi-square %.2f with %d dof\n", temp, top_p, chi, dof);
    if (chi > 26.0) test_fail("T=%g top_p=%g: frequencies do not match (chi-square %.1f)", temp, top_p, chi);
}

static int run_sampler(void) {
    const float z[SV] = {1.0f, 2.5f, -0.5f, 2.0f, 0.0f, 1.5f};
    double p[SV];
    for (int k = 0; k < 3; k++) {
        float t = (float[]){1.0f, 0.6f, 1.7f}[k];
        softmax(z, t, p, SV);
        check_distribution(z, t, 1.0f, p);
    }
    // Nucleus 0.7 at T=1: sorted probabilities 0.386 (id 1), 0.234 (id 3), 0.142 (id 5) ...
    // the smallest prefix reaching 0.7 is {1, 3, 5}, renormalised.
    softmax(z, 1.0f, p, SV);
    double q[SV] = {0}, mass = p[1] + p[3] + p[5];
    if (!(p[1] + p[3] < 0.7 && mass >= 0.7)) test_fail("nucleus test setup: masses %g %g", p[1] + p[3], mass);
    q[1] = p[1] / mass, q[3] = p[3] / mass, q[5] = p[5] / mass;
    check_distribution(z, 1.0f, 0.7f, q);

    // top_p tiny equals greedy; so does temperature 0.
    sampler a, b;
    rng_state r;
    rng_init(&r, 5);
    const int V = 500;
    float *logits = malloc(V * sizeof *logits);
    if (sampler_init(&a, V, 0.8f, 1e-9f, 3) || sampler_init(&b, V, 0.0f, 1.0f, 3)) test_fail("%s", err_msg());
    for (int i = 0; i < 200; i++) {
        for (int j = 0; j < V; j++) logits[j] = 3.0f * rng_uniform(&r);
        int32_t g = logits_argmax(logits, V);
        if (sampler_sample(&a, logits) != g || sampler_sample(&b, logits) != g)
            test_fail("top_p 1e-9 / temperature 0 did not pick the argmax %d", g);
    }
    // Flat logits (every probability below the nucleus cutoff): still a valid draw.
    for (int j = 0; j < V; j++) logits[j] = 0.0f;
    if (sampler_sample(&a, logits) != 0) test_fail("top_p 1e-9 on flat logits must pick id 0");
    sampler_free(&a);
    sampler_free(&b);

    // Same seed, same draws; another seed, other draws.
    int32_t seq[3][64];
    uint64_t seeds[3] = {9, 9, 10};
    for (int k = 0; k < 3; k++) {
        sampler s;
        if (sampler_init(&s, SV, 1.0f, 0.95f, seeds[k])) test_fail("%s", err_msg());
        for (int i = 0; i < 64; i++) seq[k][i] = sampler_sample(&s, z);
        sampler_free(&s);
    }
    if (memcmp(seq[0], seq[1], sizeof seq[0])) test_fail("the same seed gave different draws");
    if (!memcmp(seq[0], seq[2], sizeof seq[0])) test_fail("different seeds gave the same 64 draws");

    // Refusals.
    sampler s;
    if (sampler_init(&s, V, -1.0f, 1.0f, 0) == 0 || sampler_init(&s, V, 1.0f, 0.0f, 0) == 0 ||
        sampler_init(&s, V, 1.0f, 1.5f, 0) == 0 || sampler_init(&s, V, NAN, 1.0f, 0) == 0)
        test_fail("bad temperature/top_p accepted");
    free(logits);
    printf("sampler: distributions, nucleus, greedy limits and seeding OK\n");
    return 0;
}

// ---------------------------------------------------------------- streaming text

// Length of the valid UTF-8 prefix of s (RFC 3629: no overlongs, surrogates or > U+10FFFF).
static size_t utf8_valid_prefix(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!k || i + k > n || (k == 2 && c < 0xC2)) return i;
        for (size_t j = 1; j < k; j++)
            if ((s[i + j] & 0xC0) != 0x80) return i;
        if (k == 3 && ((c == 0xE0 && s[i + 1] < 0xA0) || (c == 0xED && s[i + 1] >= 0xA0))) return i;
        if (k == 4 && ((c == 0xF0 && s[i + 1] < 0x90) || c > 0xF4 || (c == 0xF4 && s[i + 1] >= 0x90))) return i;
        i += k;
    }
    return i;
}

typedef struct {
    int pieces, bad;
} piece_check;

static void check_piece(const char *p, size_t n, void *user) {
    piece_check *c = user;
    c->pieces++;
    if (utf8_valid_prefix((const unsigned char *)p, n) != n || memmem(p, n, "\xEF\xBF\xBD", 3)) c->bad++;
}

static int run_stream(const char *path) {
    tokenizer *tok = tokenizer_load(path);
    if (!tok) test_fail("%s", err_msg());
    const char *text = "Patient notes: fièvre 39,5 °C, Übelkeit; 患者は頭痛を訴えた 🤒🩺 — naïve café.";
    id_vec ids = {0};
    if (tokenizer_encode(tok, text, strlen(text), 1, &ids)) test_fail("%s", err_msg());
    // The stream must exercise characters split across tokens.
    int split = 0;
    for (size_t i = 0; i < ids.len; i++) {
        char *one;
        size_t n;
        if (tokenizer_decode(tok, ids.data + i, 1, 1, &one, &n)) test_fail("%s", err_msg());
        split += memmem(one, n, "\xEF\xBF\xBD", 3) != NULL;
        free(one);
    }
    if (!split) test_fail("%s: no token of the test text is a partial character", path);
    const size_t k = 4;  // context: "Patient notes" and a bit
    char *full, *ctx;
    size_t nf, nc;
    if (tokenizer_decode(tok, ids.data, ids.len, 1, &full, &nf) ||
        tokenizer_decode(tok, ids.data, k, 1, &ctx, &nc))
        test_fail("%s", err_msg());
    if (nf < nc || memcmp(full, ctx, nc)) test_fail("%s: decode of the context is not a prefix", path);
    piece_check pc = {0};
    text_stream ts;
    if (text_stream_init(&ts, tok, ids.data, k, check_piece, &pc)) test_fail("%s", err_msg());
    for (size_t i = k; i < ids.len; i++)
        if (text_stream_push(&ts, ids.data[i])) test_fail("%s", err_msg());
    if (text_stream_finish(&ts)) test_fail("%s", err_msg());
    if (ts.len != nf - nc || memcmp(ts.text, full + nc, ts.len))
        test_fail("%s: streamed text differs from decode():\n%s\n---\n%s", path, ts.text, full + nc);
    if (pc.bad) test_fail("%s: %d of %d pieces were not whole UTF-8 characters", path, pc.bad, pc.pieces);
    printf("%s: %zu tokens (%d partial characters) streamed as %d whole-UTF-8 pieces equal to decode()\n",
           path, ids.len - k, split, pc.pieces);
    text_stream_free(&ts);
    free(full);
    free(ctx);
    id_vec_free(&ids);
    tokenizer_free(tok);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && !strcmp(argv[1], "reference")) {
        for (int i = 2; i < argc; i++) run_reference(argv[i]);
        return 0;
    }
    if (argc >= 2 && !strcmp(argv[1], "cache")) {
        run_cache(NULL);
        for (int i = 2; i < argc; i++) {
            if (path_is_dir(argv[i])) run_cache(argv[i]);
            else printf("note: %s is absent; not checked\n", argv[i]);
        }
        return 0;
    }
    if (argc >= 2 && !strcmp(argv[1], "sampler")) return run_sampler();
    if (argc >= 3 && !strcmp(argv[1], "stream")) {
        int checked = 0;
        for (int i = 2; i < argc; i++) {
            if (path_exists(argv[i])) run_stream(argv[i]), checked++;
            else printf("note: %s is absent; not checked\n", argv[i]);
        }
        if (!checked) test_skip("none of the tokenizers given exists");
        return 0;
    }
    fprintf(stderr, "usage: test_generate reference DIR... | cache [DIR...] | sampler | "
                    "stream PATH...\n");
    return 2;
}
