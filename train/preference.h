// The preference objectives, DPO and ORPO, as TRL 1.16 computes them (trl/trainer/dpo_trainer.py
// DPOTrainer._compute_loss; trl/experimental/orpo ORPOTrainer.odds_ratio_loss and
// concatenated_forward), and their gradient folded into the cross-entropy backward: the loss
// of a pair depends on its rows only through log-probabilities, so d(loss)/d(logits) at a
// position is a per-position weight times (softmax - onehot). docs/training.md has the formulas.
#ifndef MEDTUNE_TRAIN_PREFERENCE_H
#define MEDTUNE_TRAIN_PREFERENCE_H

#include <stdint.h>

#include "model/lora.h"
#include "model/transformer.h"
#include "train/train_config.h"

// Sums over the pairs of a micro-batch, in this order; the metrics are their means.
enum {
    PREF_LOSS,             // the preference term per pair (DPO loss; ORPO: -beta log sigmoid)
    PREF_REWARD_CHOSEN,    // beta * (logp - ref logp) (ORPO: beta * mean logp)
    PREF_REWARD_REJECTED,
    PREF_ACCURACY,         // chosen reward > rejected reward
    PREF_LOGP_CHOSEN,      // DPO: summed response log-probability; ORPO: mean per token
    PREF_LOGP_REJECTED,
    PREF_LOG_ODDS_RATIO,   // ORPO: log sigmoid(log odds)
    PREF_LOG_ODDS_CHOSEN,  // ORPO: log odds of chosen over rejected
    PREF_NLL_SUM,          // ORPO: -log p summed over the chosen rows' targets
    PREF_NLL_COUNT,        // ORPO: their count
    PREF_PAIRS,
    PREF_N_STATS
};

// The step's metrics (TRL's names, docs/training.md "Metrics") from summed stats.
enum {
    PREF_M_REWARDS_CHOSEN,
    PREF_M_REWARDS_REJECTED,
    PREF_M_REWARDS_MARGINS,
    PREF_M_REWARDS_ACCURACIES,
    PREF_M_LOGPS_CHOSEN,
    PREF_M_LOGPS_REJECTED,
    PREF_M_NLL_LOSS,
    PREF_M_LOG_ODDS_RATIO,
    PREF_M_LOG_ODDS_CHOSEN,
    PREF_N_METRICS
};
extern const char *const PREF_METRIC_NAMES[PREF_N_METRICS];
// Metrics an objective logs: DPO the first six, ORPO all.
int pref_n_metrics(objective_kind objective);

typedef struct {
    const train_config *tc;
    int pairs, T;                // pairs per micro-batch: rows 2 * pairs of T
    const lora_adapter *ref;     // the reference: NULL = the base alone (DPO only)
    double *logp;                // [2 pairs T] per-position log-probabilities
    float *weight;               // [2 pairs T] gradient weights
    double *ref_sum;             // [2 pairs] reference log-probability sums (owns the
                                 // allocation of the next two)
    double *row_sum, *row_count; // [2 pairs] policy response sums and token counts
} pref_ctx;

int pref_ctx_init(pref_ctx *c, const train_config *tc, int pairs, int T,
                  const lora_adapter *ref);
void pref_ctx_free(pref_ctx *c);

// One micro-batch of c->pairs pairs (rows and resp as batcher_next_pairs fills them) on the
// plan p (B = 2 pairs): the DPO reference forward (adapter swapped to c->ref, no dropout), the
// policy forward, and with need_grad the weighted backward into p->lora->grads for the step's
// loss: the mean over the step's n_pairs pairs of the preference term, plus for ORPO the NLL
// averaged over the step's nll_count chosen targets. Adds the sums of its first `counted`
// pairs to stats[PREF_N_STATS] (an evaluation's short last chunk fills the rest with copies).
void pref_micro_batch(pref_ctx *c, lm_plan *p, const lm_batch *b, const uint8_t *resp,
                      int counted, int need_grad, int64_t n_pairs, int64_t nll_count,
                      double *stats);

// The step's loss and metrics[PREF_N_METRICS] from stats summed over its micro-batches.
double pref_finish(const train_config *tc, const double *stats, double *metrics);

#endif
