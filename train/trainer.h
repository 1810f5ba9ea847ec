// `medtune train`: LoRA fine-tuning of a frozen base on shard windows, with gradient
// accumulation, AdamW, LR schedule, clipping, periodic evaluation, checkpoints that resume
// bit-exactly, metrics.jsonl and a progress line (docs/training.md, docs/design.md).
#ifndef MEDTUNE_TRAIN_TRAINER_H
#define MEDTUNE_TRAIN_TRAINER_H

#include "train/dist.h"
#include "train/train_config.h"

// trainer_run_dist's result on a rank that failed along with a lower rank, which printed the
// error: the caller exits 1 without printing.
#define TRAINER_FAILED_ELSEWHERE (-2)

// Runs (or with `resume`, continues from OUT/checkpoints/latest) the training run. Returns 0
// on completion or after a SIGINT/SIGTERM stop (a checkpoint is written), -1 with err_msg().
int trainer_run(const train_config *tc, int resume);
// The same as one rank of a data-parallel job over d's ranks (train/dist.h): every rank calls
// it with the same config. Returns 0, -1 with err_msg() on the rank that reports the failure, or
// TRAINER_FAILED_ELSEWHERE on the others.
int trainer_run_dist(const train_config *tc, int resume, dist_ctx *d);

// Installs SIGINT/SIGTERM handlers that ask the running trainer to stop after the current step.
void trainer_install_signal_handlers(void);

#endif
