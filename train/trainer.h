// `medtune train`: LoRA fine-tuning of a frozen base on shard windows, with gradient
// accumulation, AdamW, LR schedule, clipping, periodic evaluation, checkpoints that resume
// bit-exactly, metrics.jsonl and a progress line (docs/training.md, docs/design.md).
#ifndef MEDTUNE_TRAIN_TRAINER_H
#define MEDTUNE_TRAIN_TRAINER_H

#include "model/lora.h"
#include "model/model.h"
#include "train/dist.h"
#include "train/train_config.h"

// Scores the eval_mcq sets. MCQ scoring lives in eval/, a layer above train/, so the command
// that runs the trainer passes it in (tools/train_mcq.c). score() fills the acc and acc_norm
// of set `i` of tc->eval_mcq with the model and the adapter as they are; -1 with err_msg().
// Only rank 0 calls it.
typedef struct {
    void *ctx;
    int (*score)(void *ctx, int i, const model *m, const lora_adapter *lora, double *acc,
                 double *acc_norm);
} trainer_mcq_scorer;

// trainer_run_dist's result on a rank that failed along with a lower rank, which printed the
// error: the caller exits 1 without printing.
#define TRAINER_FAILED_ELSEWHERE (-2)

// Runs (or with `resume`, continues from OUT/checkpoints/latest) the training run, without
// eval_mcq. Returns 0 on completion, after an early stop (best.patience) or after a
// SIGINT/SIGTERM stop (a checkpoint is written), -1 with err_msg().
int trainer_run(const train_config *tc, int resume);
// The same as one rank of a data-parallel job over d's ranks (train/dist.h): every rank calls
// it with the same config. Returns 0, -1 with err_msg() on the rank that reports the failure, or
// TRAINER_FAILED_ELSEWHERE on the others. mcq (used on rank 0; may be NULL on the others)
// scores tc->eval_mcq; it may be NULL when the config has no eval_mcq.
int trainer_run_dist(const train_config *tc, int resume, dist_ctx *d,
                     const trainer_mcq_scorer *mcq);

// Installs SIGINT/SIGTERM handlers that ask the running trainer to stop after the current step.
void trainer_install_signal_handlers(void);

#endif
