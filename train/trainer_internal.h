// The trainer's state, shared by train/trainer.c (the loop, checkpoints, document
// objectives), train/step.c (the optimizer step) and train/trainer_pref.c (the DPO and ORPO
// objectives and evaluation).
#ifndef MEDTUNE_TRAIN_TRAINER_INTERNAL_H
#define MEDTUNE_TRAIN_TRAINER_INTERNAL_H

#include "checkpoints/state.h"
#include "data_prep/shard_reader.h"
#include "model/transformer.h"
#include "optim/adamw.h"
#include "train/batcher.h"
#include "train/metrics.h"
#include "train/preference.h"
#include "train/trainer.h"

typedef struct {
    const train_config *tc;
    dist_ctx *d;
    int quiet;  // this rank failed along with a lower one, which reports the error
    model m;
    lora_adapter lora;
    adamw_state opt;
    lm_plan plan;
    shard_set train, val, replay;
    int has_val, has_replay;
    batcher data;
    train_state st;
    int64_t total_steps;
    int64_t n_val_windows;
    // [(grad_accum + 1) * micro_batch * T]: this rank's micro-batches of the step, then one
    // slot that receives the micro-batches of the other ranks (read only to keep the cursor).
    int32_t *tokens, *targets, *positions, *doc_ids;
    float *grad_sum;    // [n_params] the step's gradient: fold of the micro-batch gradients
    double *stats;      // [2 * grad_accum] this rank's (loss sum, targets) per micro-batch
    double *all_stats;  // [2 * grad_accum * N] every micro-batch's, in step order
    double *gather;     // [2 * max(grad_accum, eval chunks per rank) * N] all-gather scratch
    double *val_stats;  // [2 * eval chunks] (loss sum, targets) of each evaluation chunk
    metrics_log log;
    const trainer_mcq_scorer *mcq;
    double mcq_acc[TRAIN_MCQ_MAX], mcq_acc_norm[TRAIN_MCQ_MAX];
    int best_higher, best_mcq;  // best.metric: direction, eval_mcq index or -1 (val_loss)
    int64_t inject_nan_step;  // MEDTUNE_INJECT_NAN_STEP: fault injection for the test suite
    // Preference objectives (train/trainer_pref.c): a micro-batch is micro_batch pairs, rows
    // = 2 micro_batch rows of seq_len; without them rows = micro_batch.
    int pref, rows, stat_width;  // stat_width: doubles per micro-batch in stats (2 or PREF_N_STATS)
    uint8_t *resp;               // [(grad_accum + 1) * rows * T] response tokens of each row
    pref_ctx pc;
    lora_adapter ref_lora;       // DPO after init_adapter: the frozen initial adapter
    int has_ref_lora;
    uint64_t *val_pairs;         // [n_val_windows] usable val pairs
    double pref_metrics[PREF_N_METRICS], val_pref_metrics[PREF_N_METRICS];
} trainer;

// What an objective adds to the optimizer step of train/step.c, which runs the rest (reading
// order, gradient chain, clipping, AdamW): trainer_sft_objective (train/trainer.c, sft and cpt)
// and trainer_pref_objective (train/trainer_pref.c, dpo and orpo).
typedef struct {
    // Reads the step's next micro-batch into the slot at token offset o of t->tokens, targets,
    // positions, doc_ids (and resp); returns what the step's loss is a mean over (trained
    // targets; ORPO: chosen targets), or -1.
    int64_t (*read)(trainer *t, int64_t o);
    // Forward and backward of micro-batch b (at offset o): its gradient into t->lora.grads
    // (zeroed), its t->stat_width stats into st. M: micro-batches in the step over all ranks;
    // count: the sum of read over them.
    void (*micro_batch)(trainer *t, const lm_batch *b, int64_t o, int64_t M, int64_t count,
                        double *st);
    // The step's loss from t->all_stats [M * stat_width], and the objective's metrics in row.
    double (*finish)(trainer *t, int64_t M, metrics_row *row);
} trainer_objective;

extern const trainer_objective trainer_sft_objective, trainer_pref_objective;

// One optimizer step (train/step.c): fills row's loss, grad norm, lr, step, tokens, comm time.
int trainer_step(trainer *t, metrics_row *row);

// Every rank calls this at the same points: when any rank failed, every rank leaves, and only
// the lowest failing rank keeps its message to report. *stop (may be NULL) becomes global.
int trainer_sync_point(trainer *t, int rc, int *stop);

// DPO from an init_adapter: its weights are the reference, read again from init_adapter on
// --resume. A new run writes their SHA-256 to OUT/reference.sha256; a resume whose
// init_adapter holds other weights is refused. Rank 0, after the initial adapter is read.
int trainer_pref_check_reference(trainer *t, int resume);
// Opens the pair data (objective dpo or orpo) after the shard sets are open.
int trainer_pref_open(trainer *t);
// The preference loss and metrics over the fixed evenly spaced val pairs.
int trainer_pref_evaluate(trainer *t, double *val_loss);

#endif
