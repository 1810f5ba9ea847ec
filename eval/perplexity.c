#include "eval/perplexity.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/error.h"
#include "data_prep/shard_reader.h"
#include "train/batcher.h"
#include "model/transformer.h"

// Runs the windows through the model in batches of o->batch rows.
static int run_windows(const model *m, const lora_adapter *lora, shard_set *s, batcher *bt,
                       const ppl_options *o, ppl_result *r) {
    const int B = o->batch, T = o->seq_len;
    const int64_t n = r->windows;
    lm_plan plan;
    if (lm_plan_init(&plan, m, lora, B, T)) return -1;
    const size_t N = (size_t)B * T;
    int32_t *tokens = malloc(N * sizeof *tokens), *targets = malloc(N * sizeof *targets);
    int32_t *positions = malloc(N * sizeof *positions), *doc_ids = malloc(N * sizeof *doc_ids);
    int rc = 0;
    if (!tokens || !targets || !positions || !doc_ids) rc = err_set("eval: out of memory");
    double t0 = clock_now_s(), last = t0;
    for (int64_t k0 = 0; k0 < n && !rc; k0 += B) {
        for (int row = 0; row < B && !rc; row++) {
            const int64_t k = k0 + row;
            if (k < n) {
                // Evenly spaced when only some windows are wanted; all of them in order else.
                const uint64_t i = (uint64_t)(k * r->windows_total / n);
                if (batcher_window(bt, s, i, row, tokens, targets, positions, doc_ids) < 0)
                    rc = -1;
            } else {
                for (int t = 0; t < T; t++) {
                    tokens[(size_t)row * T + t] = 0;
                    targets[(size_t)row * T + t] = -1;
                    positions[(size_t)row * T + t] = t;
                    doc_ids[(size_t)row * T + t] = 0;
                }
            }
        }
        if (rc) break;
        lm_batch b = {tokens, targets, positions, doc_ids};
        r->nll_sum += lm_forward(&plan, &b, 0, 0.0f, &r->tokens);
        double now = clock_now_s();
        int64_t done = k0 + B < n ? k0 + B : n;
        if (o->progress && (now - last > 10.0 || done == n)) {
            fprintf(stderr, "eval: %lld/%lld windows, %.0f tokens/s\n", (long long)done,
                    (long long)n, (double)(done * T) / (now - t0));
            last = now;
        }
    }
    free(tokens);
    free(targets);
    free(positions);
    free(doc_ids);
    lm_plan_free(&plan);
    return rc;
}

int perplexity_eval(const model *m, const lora_adapter *lora, const char *tokenizer_fingerprint,
                    const char *model_path, const char *shard_dir, const ppl_options *o,
                    ppl_result *r) {
    memset(r, 0, sizeof *r);
    if (o->seq_len < 1 || o->batch < 1)
        return err_set("eval: --seq-len and --batch must be at least 1");
    shard_set s;
    if (shard_set_open(&s, shard_dir, o->split)) return -1;
    r->document_attention = o->attention == PPL_ATTENTION_AUTO ? s.whole_packing
                                                               : o->attention == PPL_ATTENTION_DOCUMENT;
    int rc = 0;
    batcher bt;
    int have_batcher = 0;
    if (strcmp(shard_set_tokenizer_fingerprint(&s), tokenizer_fingerprint)) {
        rc = err_set("%s: shards were made with a different tokenizer than %s's (fingerprint "
                     "%.12s, model %.12s); run medtune prep with this model", shard_dir,
                     model_path, shard_set_tokenizer_fingerprint(&s), tokenizer_fingerprint);
    } else if ((r->windows_total = shard_set_n_windows(&s, o->seq_len)) < 0) {
        rc = -1;
    } else if (r->windows_total == 0) {
        rc = err_set("%s: the %s split has %llu tokens, not one window of --seq-len %d + 1",
                     shard_dir, o->split, (unsigned long long)shard_set_n_tokens(&s), o->seq_len);
    } else if (batcher_init(&bt, &s, NULL, 0.0, o->seq_len, 0, 0, r->document_attention,
                            m->cfg.vocab_size)) {
        rc = -1;
    } else {
        have_batcher = 1;
        r->windows = o->max_windows > 0 && o->max_windows < r->windows_total ? o->max_windows
                                                                             : r->windows_total;
        rc = run_windows(m, lora, &s, &bt, o, r);
    }
    if (!rc && r->tokens == 0)
        rc = err_set("%s: the %s windows hold no trained target", shard_dir, o->split);
    if (!rc) {
        r->loss = r->nll_sum / (double)r->tokens;
        r->ppl = exp(r->loss);
    }
    if (have_batcher) batcher_free(&bt);
    shard_set_close(&s);
    return rc;
}
