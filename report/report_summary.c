#include "report/report_summary.h"

#include <math.h>
#include <string.h>

void report_summary_compute(const report_metrics *m, report_summary *s) {
    memset(s, 0, sizeof *s);
    s->tokens = s->elapsed_s = s->mean_tok_per_s = s->last_loss = NAN;
    s->best_val_loss = s->first_val_ppl = s->last_val_ppl = NAN;
    s->best_val_step = s->first_ppl_step = s->last_ppl_step = -1;
    double tps_sum = 0;
    size_t tps_n = 0;
    for (size_t i = 0; i < m->n_rows; i++) {
        const report_row *r = &m->rows[i];
        for (int f = 0; f < REPORT_N_FIELDS; f++) {
            if (!report_row_has(r, (report_field)f) || isfinite(r->v[f])) continue;
            if (s->n_nonfinite < REPORT_MAX_NOTED)
                s->nonfinite[s->n_nonfinite] = (report_nonfinite){(report_field)f, r->step, r->v[f]};
            s->n_nonfinite++;
        }
        if (report_row_has(r, REPORT_LOSS)) {
            s->n_train++;
            s->last_step = r->step;
            s->last_loss = r->v[REPORT_LOSS];
        }
        if (report_row_has(r, REPORT_TOKENS)) s->tokens = r->v[REPORT_TOKENS];
        if (report_row_has(r, REPORT_ELAPSED_S) && isfinite(r->v[REPORT_ELAPSED_S]) &&
            !(s->elapsed_s >= r->v[REPORT_ELAPSED_S]))
            s->elapsed_s = r->v[REPORT_ELAPSED_S];
        if (report_row_has(r, REPORT_TOK_PER_S) && isfinite(r->v[REPORT_TOK_PER_S])) {
            tps_sum += r->v[REPORT_TOK_PER_S];
            tps_n++;
        }
        if (report_row_has(r, REPORT_VAL_LOSS)) {
            s->n_evals++;
            double v = r->v[REPORT_VAL_LOSS];
            if (isfinite(v) && !(s->best_val_loss <= v)) {
                s->best_val_loss = v;
                s->best_val_step = r->step;
            }
        }
        if (report_row_has(r, REPORT_VAL_PPL)) {
            if (s->first_ppl_step < 0) {
                s->first_ppl_step = r->step;
                s->first_val_ppl = r->v[REPORT_VAL_PPL];
            }
            s->last_ppl_step = r->step;
            s->last_val_ppl = r->v[REPORT_VAL_PPL];
        }
    }
    if (tps_n) s->mean_tok_per_s = tps_sum / (double)tps_n;
}

double report_ema_span(size_t n_finite) {
    double span = (double)n_finite / 20.0;
    return span < 5 ? 5 : span > 200 ? 200 : span;
}

void report_ema(const double *y, size_t n, double span, double *out) {
    const double alpha = 2.0 / (span + 1.0);
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(y[i])) {
            out[i] = NAN;
            continue;
        }
        num = (1 - alpha) * num + alpha * y[i];
        den = (1 - alpha) * den + alpha;
        out[i] = num / den;
    }
}
