// Reading a run's metrics.jsonl for the report (docs/report.md). Unlike the trainer's own
// reader, this one is lenient: a line that is not a flat JSON object with a non-negative
// integer "step" and numeric metrics is counted as malformed and skipped, and non-finite
// numbers (NaN, Infinity, nan, inf, as Python's json and C's printf write them) are kept as
// such so the report can flag them.
#ifndef MEDTUNE_REPORT_REPORT_METRICS_H
#define MEDTUNE_REPORT_REPORT_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    REPORT_LOSS,
    REPORT_LR,
    REPORT_GRAD_NORM,
    REPORT_TOKENS,
    REPORT_TOK_PER_S,
    REPORT_ELAPSED_S,
    REPORT_VAL_LOSS,
    REPORT_VAL_PPL,
    // Preference objectives (dpo, orpo; docs/training.md): TRL's names, and val_ ones.
    REPORT_REWARDS_CHOSEN,
    REPORT_REWARDS_REJECTED,
    REPORT_REWARDS_MARGINS,
    REPORT_REWARDS_ACCURACIES,
    REPORT_LOGPS_CHOSEN,
    REPORT_LOGPS_REJECTED,
    REPORT_VAL_REWARDS_MARGINS,
    REPORT_VAL_REWARDS_ACCURACIES,
    REPORT_N_FIELDS
} report_field;

// The metrics.jsonl key of each field.
extern const char *const REPORT_FIELD_KEYS[REPORT_N_FIELDS];

// MCQ sets scored during training ("mcq/<name>/acc", "mcq/<name>/acc_norm"): the first
// REPORT_MAX_MCQ names met in the file are kept, in order of appearance.
enum { REPORT_MAX_MCQ = 8, REPORT_MCQ_NAME_MAX = 48 };

typedef struct {
    int64_t step;
    size_t line;  // 1-based line number in metrics.jsonl
    uint32_t present;  // bit f set when field f was on the line
    double v[REPORT_N_FIELDS];
    uint32_t mcq_present;  // bit 2 i: acc of set i on the line, bit 2 i + 1: its acc_norm
    double mcq[REPORT_MAX_MCQ][2];  // acc, acc_norm
} report_row;

#define REPORT_MAX_NOTED 8

typedef struct {
    report_row *rows;  // sorted by step, one per step (a later line for a step replaces it)
    size_t n_rows;
    size_t n_lines;        // non-blank lines read
    size_t n_malformed;    // skipped lines
    size_t malformed_lines[REPORT_MAX_NOTED];  // their first line numbers
    int last_line_torn;    // the file ends in a malformed line without a newline (being written)
    size_t n_replaced;     // lines replaced by a later line of the same step
    char mcq_names[REPORT_MAX_MCQ][REPORT_MCQ_NAME_MAX];
    int n_mcq;
} report_metrics;

// Reads `path`. Errors: the file is missing or unreadable, empty, or holds no valid line.
int report_metrics_read(report_metrics *m, const char *path);
void report_metrics_free(report_metrics *m);

static inline int report_row_has(const report_row *r, report_field f) {
    return (r->present >> f) & 1u;
}

#endif
