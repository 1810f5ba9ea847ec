// medtune report: one self-contained HTML page describing a training run directory
// (docs/report.md): loss / validation / learning-rate / speed / gradient-norm charts drawn as
// inline SVG, the run summary, the resolved config, the data manifest and the checkpoints.
// The page loads nothing from anywhere (no scripts, stylesheets, fonts or images).
#ifndef MEDTUNE_REPORT_REPORT_H
#define MEDTUNE_REPORT_REPORT_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int64_t last_step;    // highest trained step in metrics.jsonl
    int64_t total_steps;  // from config.json, -1 when unknown
    size_t n_evals;       // evaluation lines
    size_t n_malformed;   // metrics lines skipped
    size_t n_nonfinite;   // NaN / infinite values flagged
} report_result;

// Writes the report of `run_dir` atomically to `out_path` (NULL: RUN_DIR/report.html).
// Errors: run_dir missing or not a directory, metrics.jsonl missing, empty or without one
// valid line, the output not writable. Missing config.json, manifest or checkpoints are
// noted in the page, not errors.
int report_write(const char *run_dir, const char *out_path, report_result *res);

#endif
