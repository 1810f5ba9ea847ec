// OUT/metrics.jsonl: one JSON object per optimizer step
//   {"step","loss","lr","grad_norm","tokens","tok_per_s","elapsed_s","world_size"}
// (+ "comm_ms","comm_mb" with several ranks: rank 0's time in the gradient reduction, waiting
// for the other ranks included, and the megabytes it sent; + "val_loss","val_ppl" on evaluation
// steps; + "mcq/<name>/acc","mcq/<name>/acc_norm" for each eval_mcq set on evaluation steps;
// the evaluation before the first step is {"step":0,"val_loss","val_ppl",mcq...,"elapsed_s"}).
// Preference objectives add their metrics under TRL's names ("rewards/chosen", ...,
// train/preference.h) to every step, and the same with a "val_" prefix on evaluation steps
// (TRL's "eval_"), where val_loss is the preference loss and val_ppl is left out.
// Losses are printed with 17 significant digits, so a line holds the exact double.
#ifndef MEDTUNE_TRAIN_METRICS_H
#define MEDTUNE_TRAIN_METRICS_H

#include <stdint.h>
#include <stdio.h>

#include "train/train_config.h"

typedef struct {
    int64_t step, tokens;
    int world_size;  // ranks of the job; tokens and tok_per_s count all of them
    double comm_ms, comm_mb;
    double loss, lr, grad_norm, tok_per_s, elapsed_s;
    int has_val;   // an evaluation step: val_loss (when has_val_loss) and the MCQ sets
    int has_val_loss;
    double val_loss;
    int n_mcq;
    const train_mcq_set *mcq_sets;  // [n_mcq] their names
    const double *mcq_acc, *mcq_acc_norm;
    int n_pref;                 // preference metrics of the step (0: none)
    const double *pref;         // [n_pref] in PREF_METRIC_NAMES order
    const double *val_pref;     // [n_pref] on evaluation steps (NULL otherwise)
    const char *const *pref_names;
} metrics_row;

typedef struct {
    FILE *f;
    char path[4200];
} metrics_log;

// Opens OUT/metrics.jsonl for appending, first dropping lines of steps after `keep_until`
// (left by a run that went on past its last checkpoint before it stopped).
int metrics_log_open(metrics_log *m, const char *out_dir, int64_t keep_until);
int metrics_log_step(metrics_log *m, const metrics_row *r);
// The evaluation before the first step: r's step, elapsed_s and evaluation fields.
int metrics_log_eval(metrics_log *m, const metrics_row *r);
// fsync: called with each checkpoint.
int metrics_log_sync(metrics_log *m);
void metrics_log_close(metrics_log *m);

#endif
