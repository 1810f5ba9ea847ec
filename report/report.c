#include "report/report.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileio.h"
#include "common/json_number.h"
#include "common/strbuf.h"
#include "report/report_chart.h"
#include "report/report_html.h"
#include "report/report_metrics.h"
#include "report/report_sections.h"
#include "report/report_summary.h"

static const char PAGE_STYLE[] =
    "body{font-family:system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;"
    "color:#222;max-width:980px;margin:24px auto;padding:0 16px;line-height:1.4}\n"
    "h1{font-size:1.6em;margin-bottom:4px}h2{font-size:1.25em;border-bottom:1px solid #ddd;"
    "padding-bottom:3px;margin-top:28px}\n"
    ".sub{color:#555;margin:2px 0}code{background:#f3f3f3;padding:0 3px;border-radius:3px}\n"
    "table{border-collapse:collapse;margin:8px 0;font-size:14px}\n"
    "th,td{border:1px solid #ddd;padding:4px 10px;text-align:left;vertical-align:top}\n"
    "th{background:#f7f7f7;font-weight:600}td[data-value]{text-align:right;"
    "font-variant-numeric:tabular-nums}\n"
    "table.kv td{word-break:break-all}tr.latest td{font-weight:600}\n"
    ".warn{background:#fff6d6;border:1px solid #e8c96a;padding:6px 14px;border-radius:4px}\n"
    ".bad{color:#b00020;font-weight:600}.note{color:#666;font-style:italic}\n"
    "figure.chart{margin:18px 0}figcaption{font-weight:600;margin-bottom:2px}\n"
    "figure.chart svg{width:100%;height:auto;display:block}\n"
    "svg text{font-size:12px;fill:#333}svg .xlabel,svg .ylabel{font-size:13px;fill:#111}\n"
    "g.hit circle{fill-opacity:0}g.hit circle:hover,g.pts circle:hover{fill-opacity:1;"
    "stroke:#000;stroke-width:1}\n"
    "footer{margin-top:32px;color:#777;font-size:13px}\n";

static void fmt_duration(char *out, size_t n, double s) {
    if (!isfinite(s)) snprintf(out, n, "\xE2\x80\x94");
    else if (s < 60) snprintf(out, n, "%.1f s", s);
    else if (s < 3600) snprintf(out, n, "%dm %02ds", (int)(s / 60), (int)fmod(s, 60));
    else snprintf(out, n, "%dh %02dm %02ds", (int)(s / 3600), (int)fmod(s / 60, 60), (int)fmod(s, 60));
}

// One summary row; `value` goes to data-value and `step` (when >= 0) to data-step, both
// machine-readable; `text` is what is shown. A NaN value with no step is "no value".
static void summary_row(strbuf *b, const char *id, const char *label, double value,
                        int64_t step, const char *text) {
    strbuf_printf(b, "<tr id=\"sum-%s\"><th>%s</th>", id, label);
    if (isnan(value) && step < 0) {
        strbuf_printf(b, "<td>%s</td></tr>\n", text);
        return;
    }
    strbuf_printf(b, "<td data-value=\"%.17g\"", value);
    if (step >= 0) strbuf_printf(b, " data-step=\"%lld\"", (long long)step);
    strbuf_printf(b, "%s>%s</td></tr>\n", isfinite(value) ? "" : " class=\"bad\"", text);
}

static void summary_num(strbuf *b, const char *id, const char *label, double v, int64_t step) {
    char text[96];
    if (isnan(v) && step < 0) snprintf(text, sizeof text, "\xE2\x80\x94");
    else if (step >= 0) snprintf(text, sizeof text, "%.6g (step %lld)", v, (long long)step);
    else if (v == floor(v) && fabs(v) < 1e15) snprintf(text, sizeof text, "%.0f", v);
    else snprintf(text, sizeof text, "%.6g", v);
    summary_row(b, id, label, v, step, text);
}

static int64_t config_total_steps(const cJSON *config) {
    const cJSON *steps = cJSON_GetObjectItemCaseSensitive(config, "steps");
    long long n;
    return json_whole(steps, 0, 9007199254740992.0, &n) ? n : -1;
}

static void render_summary(strbuf *b, const report_metrics *m, const report_summary *s,
                           const cJSON *config, int finished) {
    char text[160];
    int64_t total = config_total_steps(config);
    strbuf_puts(b, "<section id=\"summary\">\n<h2>Summary</h2>\n<table class=\"kv\">\n");
    if (total > 0)
        snprintf(text, sizeof text, "%lld / %lld (%.0f%%)", (long long)s->last_step,
                 (long long)total, 100.0 * (double)s->last_step / (double)total);
    else
        snprintf(text, sizeof text, "%lld / ? (%s)", (long long)s->last_step,
                 config ? "the config sets epochs, not steps" : "no config.json");
    strbuf_printf(b, "<tr id=\"sum-steps\"><th>steps done / total</th><td data-value=\"%lld\" "
                     "data-total=\"%lld\">%s</td></tr>\n",
                  (long long)s->last_step, (long long)total, text);
    strbuf_printf(b, "<tr id=\"sum-status\"><th>status</th><td>%s</td></tr>\n",
                  finished ? "finished"
                           : "in progress or stopped (continue a stopped run with "
                             "<code>medtune train CONFIG --resume</code>)");
    summary_num(b, "tokens", "tokens seen", s->tokens, -1);
    fmt_duration(text, sizeof text, s->elapsed_s);
    summary_row(b, "elapsed", "elapsed time", s->elapsed_s, -1, text);
    summary_num(b, "tok-per-s", "mean tokens/s (over steps)", s->mean_tok_per_s, -1);
    summary_num(b, "last-loss", "last training loss", s->last_loss, s->n_train ? s->last_step : -1);
    summary_num(b, "evals", "evaluations", (double)s->n_evals, -1);
    summary_num(b, "best-val-loss", "best val loss", s->best_val_loss, s->best_val_step);
    summary_num(b, "first-val-ppl", "first val perplexity", s->first_val_ppl, s->first_ppl_step);
    summary_num(b, "last-val-ppl", "last val perplexity", s->last_val_ppl, s->last_ppl_step);
    summary_num(b, "lines", "metrics lines read", (double)m->n_lines, -1);
    snprintf(text, sizeof text, "%zu", m->n_malformed);
    summary_row(b, "malformed", "malformed lines skipped", (double)m->n_malformed, -1, text);
    snprintf(text, sizeof text, "%zu", s->n_nonfinite);
    summary_row(b, "nonfinite", "NaN / infinite values", (double)s->n_nonfinite, -1, text);
    strbuf_puts(b, "</table>\n</section>\n");
}

static void render_warnings(strbuf *b, const report_metrics *m, const report_summary *s,
                            const char *config_why) {
    if (!m->n_malformed && !s->n_nonfinite && !m->n_replaced && !config_why) return;
    strbuf_puts(b, "<section id=\"warnings\" class=\"warn\">\n<h2>Warnings</h2>\n<ul>\n");
    if (m->n_malformed) {
        strbuf_printf(b, "<li id=\"warn-malformed\">%zu malformed line%s of metrics.jsonl "
                         "skipped (line",
                      m->n_malformed, m->n_malformed == 1 ? "" : "s");
        size_t shown = m->n_malformed < REPORT_MAX_NOTED ? m->n_malformed : REPORT_MAX_NOTED;
        for (size_t i = 0; i < shown; i++)
            strbuf_printf(b, "%s %zu", i ? "," : (shown > 1 ? "s" : ""), m->malformed_lines[i]);
        strbuf_printf(b, "%s)%s</li>\n", m->n_malformed > shown ? ", \xE2\x80\xA6" : "",
                      m->last_line_torn ? "; the last line is incomplete (the run may be "
                                          "writing it)"
                                        : "");
    }
    if (s->n_nonfinite) {
        strbuf_printf(b, "<li id=\"warn-nonfinite\">%zu NaN or infinite value%s, left out of "
                         "the charts:",
                      s->n_nonfinite, s->n_nonfinite == 1 ? "" : "s");
        size_t shown = s->n_nonfinite < REPORT_MAX_NOTED ? s->n_nonfinite : REPORT_MAX_NOTED;
        for (size_t i = 0; i < shown; i++)
            strbuf_printf(b, "%s %s = %g at step %lld", i ? "," : "",
                          REPORT_FIELD_KEYS[s->nonfinite[i].field], s->nonfinite[i].value,
                          (long long)s->nonfinite[i].step);
        strbuf_printf(b, "%s</li>\n", s->n_nonfinite > shown ? ", \xE2\x80\xA6" : "");
    }
    if (m->n_replaced)
        strbuf_printf(b, "<li id=\"warn-replaced\">%zu line%s repeated a step already "
                         "logged; the later line is used</li>\n",
                      m->n_replaced, m->n_replaced == 1 ? "" : "s");
    if (config_why) {
        strbuf_puts(b, "<li id=\"warn-config\">");
        html_escape(b, config_why);
        strbuf_puts(b, " (no total step count, config or data summary)</li>\n");
    }
    strbuf_puts(b, "</ul>\n</section>\n");
}

// x = step and y = field f of every row that has f.
static size_t collect(const report_metrics *m, report_field f, double *x, double *y) {
    size_t n = 0;
    for (size_t i = 0; i < m->n_rows; i++) {
        if (!report_row_has(&m->rows[i], f)) continue;
        x[n] = (double)m->rows[i].step;
        y[n++] = m->rows[i].v[f];
    }
    return n;
}

// One chart per MCQ set scored during training (eval_mcq): acc and acc_norm by step. x and y
// are scratch of n_rows doubles each; acc_norm's points go to a second buffer.
static int render_mcq_charts(strbuf *b, const report_metrics *m, double *x, double *y) {
    const size_t R = m->n_rows;
    double *xn = m->n_mcq ? xmalloc_or_err(2 * R * sizeof(double), "report") : NULL;
    if (m->n_mcq && !xn) return -1;
    double *yn = xn + R;
    for (int i = 0; i < m->n_mcq; i++) {
        size_t n = 0, nn = 0;
        for (size_t k = 0; k < R; k++) {
            const report_row *r = &m->rows[k];
            if ((r->mcq_present >> (2 * i)) & 1u) {
                x[n] = (double)r->step;
                y[n++] = r->mcq[i][0];
            }
            if ((r->mcq_present >> (2 * i + 1)) & 1u) {
                xn[nn] = (double)r->step;
                yn[nn++] = r->mcq[i][1];
            }
        }
        char id[80], title[120], key[80], key_norm[80];
        snprintf(id, sizeof id, "chart-mcq-%s", m->mcq_names[i]);
        snprintf(title, sizeof title, "MCQ accuracy: %s (eval_mcq)", m->mcq_names[i]);
        snprintf(key, sizeof key, "mcq/%s/acc", m->mcq_names[i]);
        snprintf(key_norm, sizeof key_norm, "mcq/%s/acc_norm", m->mcq_names[i]);
        chart_series s[2] = {
            {key, "acc", x, y, n, CHART_LINE | CHART_MARKERS, "#2ca02c"},
            {key_norm, "acc_norm", xn, yn, nn, CHART_LINE | CHART_MARKERS, "#7b3294"},
        };
        chart_render(b, &(chart){id, title, "step", "accuracy", s, 2});
    }
    free(xn);
    return 0;
}

// A DPO/ORPO run's charts (only when metrics.jsonl has the preference metrics): implicit
// rewards, reward accuracy, and the log-probabilities of the chosen and rejected responses.
static void render_preference_charts(strbuf *b, double *const *x, double *const *y,
                                     const size_t *n) {
    if (!n[REPORT_REWARDS_MARGINS]) return;
#define PREF_SERIES(f, label, style, color) \
    {REPORT_FIELD_KEYS[f], label, x[f], y[f], n[f], style, color}
    const int line = CHART_LINE | CHART_HOVER, val = CHART_LINE | CHART_MARKERS;
    chart_series rewards[4] = {
        PREF_SERIES(REPORT_REWARDS_CHOSEN, "chosen", line, "#2ca02c"),
        PREF_SERIES(REPORT_REWARDS_REJECTED, "rejected", line, "#d62728"),
        PREF_SERIES(REPORT_REWARDS_MARGINS, "margin", line, "#1f4e9c"),
        PREF_SERIES(REPORT_VAL_REWARDS_MARGINS, "val margin", val, "#e6550d"),
    };
    chart_series acc[2] = {
        PREF_SERIES(REPORT_REWARDS_ACCURACIES, "train", line, "#1f4e9c"),
        PREF_SERIES(REPORT_VAL_REWARDS_ACCURACIES, "val", val, "#e6550d"),
    };
    chart_series logps[2] = {
        PREF_SERIES(REPORT_LOGPS_CHOSEN, "chosen", line, "#2ca02c"),
        PREF_SERIES(REPORT_LOGPS_REJECTED, "rejected", line, "#d62728"),
    };
#undef PREF_SERIES
    chart_render(b, &(chart){"chart-rewards", "Preference: implicit rewards (mean per pair)",
                             "step", "reward", rewards, 4});
    chart_render(b, &(chart){"chart-reward-accuracy",
                             "Preference: reward accuracy (chosen reward > rejected)", "step",
                             "accuracy", acc, 2});
    chart_render(b, &(chart){"chart-logps", "Preference: log-probability of the responses",
                             "step", "log p", logps, 2});
}

static int render_charts(strbuf *b, const report_metrics *m) {
    const size_t R = m->n_rows;
    double *mem = xmalloc_or_err((2 * REPORT_N_FIELDS + 1) * R * sizeof(double), "report");
    if (!mem) return -1;
    double *x[REPORT_N_FIELDS], *y[REPORT_N_FIELDS];
    size_t n[REPORT_N_FIELDS];
    for (int f = 0; f < REPORT_N_FIELDS; f++) {
        x[f] = mem + 2 * f * R;
        y[f] = x[f] + R;
        n[f] = collect(m, (report_field)f, x[f], y[f]);
    }
    double *ema = mem + 2 * REPORT_N_FIELDS * R;
    size_t n_finite = 0;
    for (size_t i = 0; i < n[REPORT_LOSS]; i++) n_finite += isfinite(y[REPORT_LOSS][i]) != 0;
    double span = report_ema_span(n_finite);
    report_ema(y[REPORT_LOSS], n[REPORT_LOSS], span, ema);
    char ema_label[64];
    snprintf(ema_label, sizeof ema_label, "train loss EMA (span %g)", span);

    chart_series loss[3];
    int n_loss = 0;
    if (n[REPORT_LOSS]) {
        loss[n_loss++] = (chart_series){"loss", "train loss", x[REPORT_LOSS], y[REPORT_LOSS],
                                        n[REPORT_LOSS], CHART_LINE | CHART_HOVER, "#9ec5e8"};
        loss[n_loss++] = (chart_series){"loss_ema", ema_label, x[REPORT_LOSS], ema,
                                        n[REPORT_LOSS], CHART_LINE, "#1f4e9c"};
    }
    if (n[REPORT_VAL_LOSS])
        loss[n_loss++] = (chart_series){"val_loss", "val loss", x[REPORT_VAL_LOSS],
                                        y[REPORT_VAL_LOSS], n[REPORT_VAL_LOSS],
                                        CHART_LINE | CHART_MARKERS, "#e6550d"};
    strbuf_puts(b, "<section id=\"charts\">\n<h2>Curves</h2>\n<p>Hover a point for its "
                   "step and value. NaN and infinite values are left out.</p>\n");
    chart_render(b, &(chart){"chart-loss", "Loss (mean cross-entropy per trained token)", "step",
                             "loss", loss, n_loss});
    if (n[REPORT_VAL_PPL]) {
        chart_series ppl = {"val_ppl", "val perplexity", x[REPORT_VAL_PPL], y[REPORT_VAL_PPL],
                            n[REPORT_VAL_PPL], CHART_LINE | CHART_MARKERS, "#e6550d"};
        chart_render(b, &(chart){"chart-ppl", "Validation perplexity", "step", "perplexity",
                                 &ppl, 1});
    } else {
        strbuf_puts(b, "<figure class=\"chart\"><figcaption>Validation perplexity"
                       "</figcaption><p class=\"note\" id=\"chart-ppl\">No evaluation in "
                       "metrics.jsonl (eval_every is 0, or the run has not reached an "
                       "evaluation).</p></figure>\n");
    }
    static const struct {
        report_field f;
        const char *id, *title, *y_label, *color;
    } SINGLE[] = {
        {REPORT_LR, "chart-lr", "Learning rate", "learning rate", "#2ca02c"},
        {REPORT_TOK_PER_S, "chart-speed", "Throughput (tokens per second of each step)",
         "tokens/s", "#7b3294"},
        {REPORT_GRAD_NORM, "chart-grad", "Gradient norm (before clipping)", "grad norm",
         "#8c564b"},
    };
    for (size_t i = 0; i < sizeof SINGLE / sizeof SINGLE[0]; i++) {
        report_field f = SINGLE[i].f;
        chart_series s = {REPORT_FIELD_KEYS[f], SINGLE[i].y_label, x[f], y[f], n[f],
                          CHART_LINE | CHART_HOVER, SINGLE[i].color};
        chart_render(b, &(chart){SINGLE[i].id, SINGLE[i].title, "step", SINGLE[i].y_label, &s, 1});
    }
    render_preference_charts(b, x, y, n);
    int rc = render_mcq_charts(b, m, x[0], y[0]);
    strbuf_puts(b, "</section>\n");
    free(mem);
    return rc;
}

// config.json as a cJSON object, or NULL with the reason in `why`.
static cJSON *config_load(const char *run_dir, char *why, size_t n) {
    char path[4200];
    char *text;
    size_t len;
    snprintf(path, sizeof path, "%s/config.json", run_dir);
    if (!path_exists(path)) {
        snprintf(why, n, "%s: not found", path);
        return NULL;
    }
    if (file_read_all(path, &text, &len)) {
        snprintf(why, n, "%s", err_msg());
        err_clear();
        return NULL;
    }
    cJSON *j = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        snprintf(why, n, "%s: not a JSON object", path);
        return NULL;
    }
    return j;
}

static int run_finished(const char *run_dir, const report_summary *s, const cJSON *config) {
    int64_t total = config_total_steps(config);
    if (total >= 0) return s->last_step >= total;
    char path[4200];
    snprintf(path, sizeof path, "%s/adapter/adapter_model.safetensors", run_dir);
    return path_exists(path);
}

static void render_page(strbuf *b, const char *run_dir, const report_metrics *m,
                        const report_summary *s, const cJSON *config, const char *config_why) {
    strbuf_puts(b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                   "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                   "<title>medtune report: ");
    html_escape(b, run_dir);
    strbuf_printf(b, "</title>\n<style>\n%s</style>\n</head>\n<body>\n<header>\n"
                     "<h1>Training run report</h1>\n<p class=\"sub\">run directory: <code>",
                  PAGE_STYLE);
    html_escape(b, run_dir);
    strbuf_puts(b, "</code></p>\n");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(config, "model");
    if (cJSON_IsString(model)) {
        strbuf_puts(b, "<p class=\"sub\">base model: <code>");
        html_escape(b, model->valuestring);
        strbuf_puts(b, "</code></p>\n");
    }
    strbuf_puts(b, "</header>\n");
    render_warnings(b, m, s, config_why);
    render_summary(b, m, s, config, run_finished(run_dir, s, config));
}

int report_write(const char *run_dir, const char *out_path, report_result *res) {
    if (!path_exists(run_dir)) return err_set("%s: no such run directory", run_dir);
    if (!path_is_dir(run_dir)) return err_set("%s: not a directory", run_dir);
    char metrics_path[4200], default_out[4200];
    snprintf(metrics_path, sizeof metrics_path, "%s/metrics.jsonl", run_dir);
    snprintf(default_out, sizeof default_out, "%s/report.html", run_dir);
    if (!out_path) out_path = default_out;
    char out_dir[4200];
    snprintf(out_dir, sizeof out_dir, "%s", out_path);
    char *slash = strrchr(out_dir, '/');
    if (slash) *(slash == out_dir ? slash + 1 : slash) = '\0';
    if (!path_is_dir(slash ? out_dir : "."))
        return err_set("%s: cannot write the report: %s is not a directory", out_path, out_dir);
    report_metrics m;
    if (report_metrics_read(&m, metrics_path)) return -1;
    report_summary s;
    report_summary_compute(&m, &s);
    char config_why[4400] = "";
    cJSON *config = config_load(run_dir, config_why, sizeof config_why);

    strbuf b;
    strbuf_init(&b);
    render_page(&b, run_dir, &m, &s, config, config ? NULL : config_why);
    int rc = render_charts(&b, &m);
    if (!rc) {
        if (config) report_data_section(&b, config);
        report_checkpoints_section(&b, run_dir);
        report_config_section(&b, config, config_why);
        strbuf_printf(&b, "<footer>Made by <code>medtune report</code> from metrics.jsonl "
                          "(%zu lines, %zu steps, %zu evaluations, %zu malformed lines "
                          "skipped). This page loads nothing from the network.</footer>\n"
                          "</body>\n</html>\n",
                      m.n_lines, s.n_train, s.n_evals, m.n_malformed);
        if (strbuf_failed(&b)) rc = err_set("%s: out of memory building the report", out_path);
        else rc = file_write_atomic(out_path, b.data, b.len);
    }
    if (!rc && res)
        *res = (report_result){s.last_step, config_total_steps(config), s.n_evals, m.n_malformed,
                               s.n_nonfinite};
    strbuf_free(&b);
    cJSON_Delete(config);
    report_metrics_free(&m);
    return rc;
}
