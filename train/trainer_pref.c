// The DPO and ORPO objectives in the trainer: pairs instead of windows, a step's loss as
// train/preference.c defines it, the val split's preference metrics (docs/training.md).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileio.h"
#include "common/sha256.h"
#include "train/trainer_internal.h"

int trainer_pref_check_reference(trainer *t, int resume) {
    if (!t->has_ref_lora) return 0;
    char path[4400], hex[65];
    snprintf(path, sizeof path, "%s/reference.sha256", t->tc->out_dir);
    sha256_hex(t->ref_lora.params, t->ref_lora.n_params * sizeof(float), hex);
    if (!resume) return file_write_atomic(path, hex, 64);
    char *text;
    size_t len;
    if (file_read_all(path, &text, &len)) return -1;
    int same = len == 64 && !memcmp(text, hex, 64);
    free(text);
    if (!same)
        return err_set("cannot resume %s: init_adapter %s holds other weights than the adapter "
                       "the run started from, which is its DPO reference (%s)",
                       t->tc->out_dir, t->tc->init_adapter, path);
    return 0;
}

int trainer_pref_open(trainer *t) {
    const train_config *tc = t->tc;
    const char *name = tc->objective == OBJECTIVE_DPO ? "dpo" : "orpo";
    if (!t->train.pairs)
        return err_set("%s: holds documents, not preference pairs: objective %s needs shards "
                       "made from `preference` inputs (medtune prep)",
                       t->train.dir, name);
    if (!t->val.pairs)
        return err_set("%s: holds documents, not preference pairs: objective %s evaluates pairs",
                       t->val.dir, name);
    if (t->has_replay)
        return err_set("%s: data.replay: objective %s trains on pairs only", t->replay.dir, name);
    if (batcher_init_pairs(&t->data, &t->train, tc->seq_len, tc->shuffle, tc->seed,
                           t->m.cfg.vocab_size) ||
        shard_set_check_model_vocab(&t->val, t->m.cfg.vocab_size) ||
        batcher_usable_pairs(&t->val, tc->seq_len, &t->val_pairs, &t->n_val_windows))
        return -1;
    return 0;
}

// Step loss and metrics from the summed stats of micro-batches [0, M).
static double finish(trainer *t, const double *all, int64_t M, double *metrics) {
    double sum[PREF_N_STATS] = {0};
    for (int64_t m = 0; m < M; m++)
        for (int k = 0; k < PREF_N_STATS; k++) sum[k] += all[m * PREF_N_STATS + k];
    return pref_finish(t->tc, sum, metrics);
}

// DPO and ORPO in the step of train/step.c: a micro-batch is micro_batch pairs. ORPO's NLL is a
// mean over the step's chosen targets, the count read returns, which every rank needs before
// its backward (train/step.c reads all micro-batches first).
static int64_t pref_read(trainer *t, int64_t o) {
    return batcher_next_pairs(&t->data, t->tc->micro_batch, t->tokens + o, t->targets + o,
                              t->positions + o, t->doc_ids + o, t->resp + o);
}

static void pref_step_micro_batch(trainer *t, const lm_batch *b, int64_t o, int64_t M,
                                  int64_t nll_count, double *st) {
    const int P = t->tc->micro_batch;
    memset(st, 0, PREF_N_STATS * sizeof(double));
    pref_micro_batch(&t->pc, &t->plan, b, t->resp + o, P, 1, M * P, nll_count, st);
}

static double pref_step_finish(trainer *t, int64_t M, metrics_row *row) {
    row->n_pref = pref_n_metrics(t->tc->objective);
    row->pref = t->pref_metrics;
    row->pref_names = PREF_METRIC_NAMES;
    return finish(t, t->all_stats, M, t->pref_metrics);
}

const trainer_objective trainer_pref_objective = {pref_read, pref_step_micro_batch,
                                                  pref_step_finish};

// Chunks of micro_batch val pairs, evenly spaced over the usable pairs, dealt to ranks
// round-robin and folded in chunk order, as evaluate() in trainer.c does with windows.
int trainer_pref_evaluate(trainer *t, double *val_loss) {
    const train_config *tc = t->tc;
    const int P = tc->micro_batch, N = t->d->size;
    int64_t want = tc->eval_batches * P;
    int64_t n = want < t->n_val_windows ? want : t->n_val_windows;
    int64_t n_chunks = (n + P - 1) / P;
    int rc = 0;
    int64_t nll_count = 0;
    t->plan.training = 0;
    // ORPO's val nll_loss is a mean over all evaluated chosen targets: count them first.
    for (int64_t k = 0; k < n && !rc; k++) {
        int64_t got = batcher_pair(&t->data, &t->val, t->val_pairs[k * t->n_val_windows / n], 0,
                                   1, t->tokens, t->targets, t->positions, t->doc_ids, t->resp);
        if (got < 0) rc = -1;
        nll_count += got;
    }
    for (int64_t j = t->d->rank; j < n_chunks && !rc; j += N) {
        for (int slot = 0; slot < P && !rc; slot++) {
            int64_t k = j * P + slot;
            // A short last chunk repeats its first pair; only real pairs are counted below.
            uint64_t i = t->val_pairs[(k < n ? k : j * P) * t->n_val_windows / n];
            rc = batcher_pair(&t->data, &t->val, i, slot, P, t->tokens, t->targets,
                              t->positions, t->doc_ids, t->resp) < 0;
        }
        if (rc) break;
        lm_batch b = {t->tokens, t->targets, t->positions, t->doc_ids};
        double *mine = t->stats + PREF_N_STATS * (j / N);
        memset(mine, 0, PREF_N_STATS * sizeof(double));
        int real = n - j * P < P ? (int)(n - j * P) : P;
        pref_micro_batch(&t->pc, &t->plan, &b, t->resp, real, 0, n, nll_count, mine);
    }
    t->plan.training = 1;
    if (trainer_sync_point(t, rc ? -1 : 0, NULL)) return -1;
    dist_gather_dealt(t->d, t->stats, t->val_stats, t->gather, n_chunks, PREF_N_STATS);
    *val_loss = n ? finish(t, t->val_stats, n_chunks, t->val_pref_metrics) : NAN;
    return 0;
}
