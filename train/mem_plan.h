// The memory a training run needs, shown before the first step, and the early refusal when
// the machine cannot hold it (rather than a kill by the kernel in the middle of step 1).
#ifndef MEDTUNE_TRAIN_MEM_PLAN_H
#define MEDTUNE_TRAIN_MEM_PLAN_H

#include <stddef.h>
#include <stdio.h>

#include "model/lora.h"
#include "model/model.h"
#include "train/train_config.h"

typedef struct {
    size_t weights;      // the base model as held in memory (loaded)
    size_t adapter;      // LoRA parameters and their gradients, DPO's reference (allocated)
    size_t optimizer;    // AdamW moments and the step's gradient sum
    size_t activations;  // the lm_plan arena: activations and scratch of one micro-batch
    size_t buffers;      // the batch's ids, targets, positions and documents
    size_t to_allocate;  // optimizer + activations + buffers: what is not allocated yet
} mem_plan;

// The plan of a run of tc on model m with adapter a (both already allocated), whose
// micro-batch is `rows` windows (2 micro_batch for the preference objectives: chosen, rejected).
int mem_plan_make(mem_plan *mp, const model *m, const lora_adapter *a, const train_config *tc,
                  int rows);
void mem_plan_print(const mem_plan *mp, FILE *fp);
// MemAvailable of meminfo_path (/proc/meminfo) in bytes, or -1 when it cannot be read.
long long mem_available(const char *meminfo_path);
// Fails with one line (needed, available, the setting that reduces it) when `available`
// bytes (>= 0) cannot hold what is left to allocate; available < 0 (unknown) passes.
int mem_plan_check(const mem_plan *mp, const train_config *tc, long long available);

#endif
