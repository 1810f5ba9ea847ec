// libFuzzer harness: the metrics.jsonl reader of `medtune report` (report/report_metrics.h).
// The input is a metrics.jsonl file, written to a scratch file (report_metrics_read takes a
// path). What it returns must hold the promises of its header: rows sorted by step with one
// row per step, line numbers within the lines read, at most the noted malformed lines.
#include <stdint.h>

#include "common/error.h"
#include "report/report_metrics.h"
#include "tests/fuzz/fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    err_clear();
    char path[4096];
    fuzz_write(path, sizeof path, "metrics.jsonl", data, size);
    report_metrics m;
    if (report_metrics_read(&m, path) != 0) {
        fuzz_expect_error("report_metrics_read");
        return 0;
    }
    if (m.n_rows == 0) fuzz_fail("success without a row");
    for (size_t i = 0; i < m.n_rows; i++) {
        const report_row *r = &m.rows[i];
        if (r->step < 0) fuzz_fail("row %zu: negative step %lld", i, (long long)r->step);
        if (i && r->step <= m.rows[i - 1].step) fuzz_fail("rows not sorted by step at %zu", i);
        if (r->line == 0 || r->line > size) fuzz_fail("row %zu: line %zu", i, r->line);
        if (r->present >> REPORT_N_FIELDS) fuzz_fail("row %zu: unknown field bits", i);
    }
    if (m.n_rows + m.n_malformed + m.n_replaced > m.n_lines)
        fuzz_fail("%zu rows + %zu malformed + %zu replaced of %zu lines", m.n_rows, m.n_malformed,
                  m.n_replaced, m.n_lines);
    report_metrics_free(&m);
    return 0;
}
