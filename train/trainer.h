// `medtune train`: LoRA fine-tuning of a frozen base on shard windows, with gradient
// accumulation, AdamW, LR schedule, clipping, periodic evaluation, checkpoints that resume
// bit-exactly, metrics.jsonl and a progress line (docs/training.md, docs/design.md).
#ifndef MEDTUNE_TRAIN_TRAINER_H
#define MEDTUNE_TRAIN_TRAINER_H

#include "train/train_config.h"

// Runs (or with `resume`, continues from OUT/checkpoints/latest) the training run. Returns 0
// on completion or after a SIGINT/SIGTERM stop (a checkpoint is written), -1 with err_msg().
int trainer_run(const train_config *tc, int resume);

// Installs SIGINT/SIGTERM handlers that ask the running trainer to stop after the current step.
void trainer_install_signal_handlers(void);

#endif
