#include "eval/preference.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/error.h"
#include "data_prep/shard_reader.h"
#include "model/transformer.h"
#include "train/batcher.h"
#include "train/preference.h"

// The usable pairs in chunks of o->batch, through the training code's DPO forward
// (train/preference.c, no gradient): reference = the plan with its adapter swapped for ref
// (NULL: none). Adds the chosen rows' response sums and token counts of both models to sums
// (SUM_*), which the DPO stats leave out.
enum { SUM_LOGP, SUM_REF_LOGP, SUM_TOKENS, SUM_REF_REJECTED, N_SUMS };

static int run_pairs(const model *m, const lora_adapter *lora, const lora_adapter *ref,
                     shard_set *s, batcher *bt, const pref_eval_options *o, pref_eval_result *r,
                     double *stats, double *sums) {
    const int P = o->batch, T = o->seq_len;
    train_config tc;
    memset(&tc, 0, sizeof tc);
    tc.objective = OBJECTIVE_DPO;
    tc.dpo_loss = DPO_LOSS_SIGMOID;
    tc.dpo_beta = o->beta;
    lm_plan plan;
    pref_ctx pc;
    if (lm_plan_init(&plan, m, lora, 2 * P, T)) return -1;
    if (pref_ctx_init(&pc, &tc, P, T, ref)) return lm_plan_free(&plan), -1;
    const size_t N = (size_t)2 * P * T;
    int32_t *tokens = malloc(N * sizeof *tokens), *targets = malloc(N * sizeof *targets);
    int32_t *positions = malloc(N * sizeof *positions), *doc_ids = malloc(N * sizeof *doc_ids);
    uint8_t *resp = malloc(N);
    int rc = 0;
    if (!tokens || !targets || !positions || !doc_ids || !resp) rc = err_set("eval: out of memory");
    const int64_t n = r->pairs;
    double t0 = clock_now_s(), last = t0;
    for (int64_t k0 = 0; k0 < n && !rc; k0 += P) {
        int real = n - k0 < P ? (int)(n - k0) : P;
        // A short last chunk repeats its first pair in the empty slots; they are not counted.
        for (int slot = 0; slot < P && !rc; slot++) {
            int64_t k = k0 + (slot < real ? slot : 0);
            uint64_t i = bt->pair_ids[k * r->pairs_usable / n];
            rc = batcher_pair(bt, s, i, slot, P, tokens, targets, positions, doc_ids, resp) < 0;
        }
        if (rc) break;
        lm_batch b = {tokens, targets, positions, doc_ids};
        pref_micro_batch(&pc, &plan, &b, resp, real, 0, n, 0, stats);
        for (int j = 0; j < real; j++) {
            sums[SUM_LOGP] += pc.row_sum[j];
            sums[SUM_REF_LOGP] += pc.ref_sum[j];
            sums[SUM_TOKENS] += pc.row_count[j];
            sums[SUM_REF_REJECTED] += pc.ref_sum[P + j];
        }
        double now = clock_now_s();
        if (o->progress && (now - last > 10.0 || k0 + real == n)) {
            fprintf(stderr, "eval: %lld/%lld pairs\n", (long long)(k0 + real), (long long)n);
            last = now;
        }
    }
    free(tokens);
    free(targets);
    free(positions);
    free(doc_ids);
    free(resp);
    pref_ctx_free(&pc);
    lm_plan_free(&plan);
    return rc;
}

int preference_eval(const model *m, const lora_adapter *lora, const lora_adapter *ref,
                    const char *tokenizer_fingerprint, const char *model_path,
                    const char *shard_dir, const pref_eval_options *o, pref_eval_result *r) {
    memset(r, 0, sizeof *r);
    if (o->seq_len < 1 || o->batch < 1)
        return err_set("eval: --seq-len and --batch must be at least 1");
    // Both adapters run on one plan, whose LoRA buffers are sized by the policy's rank and
    // targets (as in training, where the reference is the initial adapter itself).
    if (ref && !lora) return err_set("eval: a reference adapter needs an adapter to compare");
    if (ref && (ref->cfg.r != lora->cfg.r || ref->cfg.targets != lora->cfg.targets))
        return err_set("%s: rank %d and targets differ from the adapter's (rank %d): the "
                       "reference adapter must have the adapter's rank and target modules",
                       o->ref_path, ref->cfg.r, lora->cfg.r);
    shard_set s;
    if (shard_set_open(&s, shard_dir, o->split)) return -1;
    int rc = 0, have_batcher = 0;
    batcher bt;
    if (strcmp(shard_set_tokenizer_fingerprint(&s), tokenizer_fingerprint)) {
        rc = err_set("%s: shards were made with a different tokenizer than %s's (fingerprint "
                     "%.12s, model %.12s); run medtune prep with this model", shard_dir,
                     model_path, shard_set_tokenizer_fingerprint(&s), tokenizer_fingerprint);
    } else if (!s.pairs) {
        rc = err_set("%s: holds documents, not preference pairs: use --shards for perplexity",
                     shard_dir);
    } else if (shard_set_n_pairs(&s) == 0) {
        rc = err_set("%s: the %s split holds no pair", shard_dir, o->split);
    } else if (batcher_init_pairs(&bt, &s, o->seq_len, 0, 0, m->cfg.vocab_size)) {
        rc = -1;
    } else {
        have_batcher = 1;
        double stats[PREF_N_STATS] = {0}, metrics[PREF_N_METRICS], sums[N_SUMS] = {0};
        r->pairs_total = (int64_t)shard_set_n_pairs(&s);
        r->pairs_usable = bt.n_train;
        r->pairs = o->max_pairs > 0 && o->max_pairs < bt.n_train ? o->max_pairs : bt.n_train;
        rc = run_pairs(m, lora, ref, &s, &bt, o, r, stats, sums);
        if (!rc) {
            train_config tc = {.objective = OBJECTIVE_DPO, .dpo_beta = o->beta};
            r->loss = pref_finish(&tc, stats, metrics);
            r->logps_chosen = metrics[PREF_M_LOGPS_CHOSEN];
            r->logps_rejected = metrics[PREF_M_LOGPS_REJECTED];
            r->ref_logps_chosen = sums[SUM_REF_LOGP] / (double)r->pairs;
            r->ref_logps_rejected = sums[SUM_REF_REJECTED] / (double)r->pairs;
            r->tokens_chosen = (int64_t)sums[SUM_TOKENS];
            // Token-weighted: the cross-entropy of the chosen answers as a whole.
            r->nll_chosen = sums[SUM_TOKENS] > 0 ? -sums[SUM_LOGP] / sums[SUM_TOKENS] : 0.0;
            r->ref_nll_chosen =
                sums[SUM_TOKENS] > 0 ? -sums[SUM_REF_LOGP] / sums[SUM_TOKENS] : 0.0;
            r->has_rewards = lora != NULL;
            r->rewards_chosen = metrics[PREF_M_REWARDS_CHOSEN];
            r->rewards_rejected = metrics[PREF_M_REWARDS_REJECTED];
            r->margins = metrics[PREF_M_REWARDS_MARGINS];
            r->accuracy = metrics[PREF_M_REWARDS_ACCURACIES];
        }
    }
    if (have_batcher) batcher_free(&bt);
    shard_set_close(&s);
    return rc;
}
