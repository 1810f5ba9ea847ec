// The numbers at the top of the run report, computed from metrics.jsonl (docs/report.md
// defines each one; tests/report recomputes them in Python).
#ifndef MEDTUNE_REPORT_REPORT_SUMMARY_H
#define MEDTUNE_REPORT_REPORT_SUMMARY_H

#include <stddef.h>
#include <stdint.h>

#include "report/report_metrics.h"

typedef struct {
    report_field field;
    int64_t step;
    double value;
} report_nonfinite;

typedef struct {
    size_t n_train;            // lines with a training loss
    size_t n_evals;            // lines with a val_loss
    int64_t last_step;         // highest step with a training loss (0 when none)
    double tokens;             // "tokens" of the last line holding it (NaN when none)
    double elapsed_s;          // largest finite elapsed_s (NaN when none)
    double mean_tok_per_s;     // mean of the finite tok_per_s values (NaN when none)
    double last_loss;          // loss at last_step
    int64_t best_val_step;     // step of the lowest finite val_loss (first one on ties); -1: none
    double best_val_loss;
    int64_t first_ppl_step, last_ppl_step;  // first and last lines with val_ppl; -1: none
    double first_val_ppl, last_val_ppl;
    size_t n_nonfinite;        // NaN or infinite values over all fields and lines
    report_nonfinite nonfinite[REPORT_MAX_NOTED];  // the first of them
} report_summary;

void report_summary_compute(const report_metrics *m, report_summary *s);

// Smoothing span of the loss curve for n finite points: n / 20 clamped to [5, 200].
double report_ema_span(size_t n_finite);
// Bias-corrected exponential moving average with alpha = 2 / (span + 1) over the finite
// values of y (pandas' ewm(span, adjust=True) over them); out[i] is NaN where y[i] is not
// finite.
void report_ema(const double *y, size_t n, double span, double *out);

#endif
