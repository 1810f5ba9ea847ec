// Learning-rate schedules, the same curves as Hugging Face transformers' LambdaLR schedules:
// linear warmup from 0 over warmup_steps, then constant, linear decay or cosine decay to
// min_lr_ratio * lr at total_steps. Step s is the 0-based index of the optimizer update, so
// with warmup the first update uses lr 0, as in transformers.
#ifndef MEDTUNE_OPTIM_SCHEDULE_H
#define MEDTUNE_OPTIM_SCHEDULE_H

#include <stdint.h>

typedef enum { SCHEDULE_CONSTANT, SCHEDULE_LINEAR, SCHEDULE_COSINE } schedule_decay;

typedef struct {
    float lr;
    int64_t warmup_steps;
    int64_t total_steps;
    schedule_decay decay;
    float min_lr_ratio;
} schedule_config;

float schedule_lr(const schedule_config *s, int64_t step);

#endif
