// The suite's leaderboard table, results.json, results.csv and per-item files.
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileio.h"
#include "common/strbuf.h"
#include "eval/suite.h"

static const char *const VARIANT[2] = {"model", "compared"};

static void print_scores(const eval_suite *s, int which, FILE *f) {
    fprintf(f, "%-32s %6s  %-6s %-16s  %-8s %s\n", "task", "n", "acc", "95% CI", "acc_norm",
            "95% CI");
    for (int i = 0; i < s->n_tasks; i++) {
        const mcq_summary *m = &s->tasks[i].sum[which];
        fprintf(f, "%-32s %6zu  %.4f [%.4f, %.4f]  %.4f   [%.4f, %.4f]\n", s->tasks[i].name, m->n,
                m->acc, m->ci_lo, m->ci_hi, m->acc_norm, m->ci_norm_lo, m->ci_norm_hi);
    }
    double acc, acc_norm;
    suite_average(s, which, &acc, &acc_norm);
    fprintf(f, "%-32s %6s  %.4f %-17s  %.4f\n", "average (of tasks)", "", acc, "", acc_norm);
}

void suite_print(const eval_suite *s, FILE *f) {
    fprintf(f, "%s%s\n", s->name, s->scored[1] ? ": the model" : "");
    print_scores(s, 0, f);
    if (!s->scored[1]) return;
    fprintf(f, "\n%s: with the compared adapter\n", s->name);
    print_scores(s, 1, f);
    fprintf(f, "\npaired exact McNemar test (b: only the model right, c: only the adapter)\n");
    fprintf(f, "%-32s %8s %6s %6s %9s   %6s %6s %9s\n", "task", "acc diff", "b", "c", "p",
            "b_norm", "c_norm", "p_norm");
    for (int i = 0; i < s->n_tasks; i++) {
        const suite_task *t = &s->tasks[i];
        fprintf(f, "%-32s %+8.4f %6zu %6zu %9.4g   %6zu %6zu %9.4g\n", t->name,
                t->sum[1].acc - t->sum[0].acc, t->mc.b, t->mc.c, t->mc.p, t->mc_norm.b,
                t->mc_norm.c, t->mc_norm.p);
    }
    double a0, n0, a1, n1;
    suite_average(s, 0, &a0, &n0);
    suite_average(s, 1, &a1, &n1);
    fprintf(f, "%-32s %+8.4f %6zu %6zu %9.4g   %6zu %6zu %9.4g\n", "all items", a1 - a0, s->mc.b,
            s->mc.c, s->mc.p, s->mc_norm.b, s->mc_norm.c, s->mc_norm.p);
}

static cJSON *summary_json(const mcq_summary *m) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "acc", m->acc);
    cJSON_AddNumberToObject(o, "acc_norm", m->acc_norm);
    cJSON_AddNumberToObject(o, "correct", (double)m->correct);
    cJSON_AddNumberToObject(o, "correct_norm", (double)m->correct_norm);
    double ci[2] = {m->ci_lo, m->ci_hi}, ci_norm[2] = {m->ci_norm_lo, m->ci_norm_hi};
    cJSON_AddItemToObject(o, "ci95", cJSON_CreateDoubleArray(ci, 2));
    cJSON_AddItemToObject(o, "ci95_norm", cJSON_CreateDoubleArray(ci_norm, 2));
    cJSON_AddNumberToObject(o, "stderr", m->stderr_acc);
    cJSON_AddNumberToObject(o, "stderr_norm", m->stderr_norm);
    cJSON_AddNumberToObject(o, "truncated_items", (double)m->truncated_items);
    return o;
}

static cJSON *mcnemar_json(const suite_mcnemar *acc, const suite_mcnemar *norm) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "b", (double)acc->b);
    cJSON_AddNumberToObject(o, "c", (double)acc->c);
    cJSON_AddNumberToObject(o, "p", acc->p);
    cJSON_AddNumberToObject(o, "b_norm", (double)norm->b);
    cJSON_AddNumberToObject(o, "c_norm", (double)norm->c);
    cJSON_AddNumberToObject(o, "p_norm", norm->p);
    return o;
}

static void add_str_or_null(cJSON *o, const char *key, const char *v) {
    if (v) cJSON_AddStringToObject(o, key, v);
    else cJSON_AddNullToObject(o, key);
}

static cJSON *results_json(const eval_suite *s, const suite_run_info *info) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "suite", s->name);
    cJSON_AddStringToObject(j, "suite_file", info->suite_path);
    cJSON_AddStringToObject(j, "model", info->model);
    add_str_or_null(j, "adapter", info->adapter);
    add_str_or_null(j, "compare", info->compare);
    cJSON_AddNumberToObject(j, "max_len", info->max_len);
    cJSON_AddStringToObject(j, "interval", "wilson");
    cJSON *tasks = cJSON_AddArrayToObject(j, "tasks");
    for (int i = 0; i < s->n_tasks; i++) {
        const suite_task *t = &s->tasks[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "task", t->name);
        cJSON_AddStringToObject(o, "format", mcq_format_name(t->format));
        cJSON_AddStringToObject(o, "path", t->path);
        cJSON_AddNumberToObject(o, "n", (double)t->set.n);
        cJSON_AddNumberToObject(o, "skipped", (double)t->set.n_skipped);
        for (int w = 0; w < 2; w++)
            if (s->scored[w]) cJSON_AddItemToObject(o, VARIANT[w], summary_json(&t->sum[w]));
        if (s->scored[1]) cJSON_AddItemToObject(o, "mcnemar", mcnemar_json(&t->mc, &t->mc_norm));
        cJSON_AddItemToArray(tasks, o);
    }
    cJSON *avg = cJSON_AddObjectToObject(j, "average");
    for (int w = 0; w < 2; w++) {
        if (!s->scored[w]) continue;
        double acc, acc_norm;
        suite_average(s, w, &acc, &acc_norm);
        cJSON *o = cJSON_AddObjectToObject(avg, VARIANT[w]);
        cJSON_AddNumberToObject(o, "acc", acc);
        cJSON_AddNumberToObject(o, "acc_norm", acc_norm);
    }
    if (s->scored[1]) cJSON_AddItemToObject(j, "mcnemar_all", mcnemar_json(&s->mc, &s->mc_norm));
    cJSON_AddNumberToObject(j, "seconds", info->seconds);
    return j;
}

// One row per task and scored variant; the McNemar columns are on the compared row.
static int results_csv(const eval_suite *s, strbuf *b) {
    int rc = strbuf_printf(b, "task,variant,n,correct,acc,acc_ci_lo,acc_ci_hi,correct_norm,"
                              "acc_norm,acc_norm_ci_lo,acc_norm_ci_hi,mcnemar_b,mcnemar_c,"
                              "mcnemar_p,mcnemar_b_norm,mcnemar_c_norm,mcnemar_p_norm\n");
    for (int i = 0; i < s->n_tasks && !rc; i++)
        for (int w = 0; w < 2 && !rc; w++) {
            if (!s->scored[w]) continue;
            const suite_task *t = &s->tasks[i];
            const mcq_summary *m = &t->sum[w];
            rc = strbuf_printf(b, "%s,%s,%zu,%zu,%.17g,%.17g,%.17g,%zu,%.17g,%.17g,%.17g", t->name,
                               VARIANT[w], m->n, m->correct, m->acc, m->ci_lo, m->ci_hi,
                               m->correct_norm, m->acc_norm, m->ci_norm_lo, m->ci_norm_hi);
            if (!rc && w == 1)
                rc = strbuf_printf(b, ",%zu,%zu,%.17g,%zu,%zu,%.17g\n", t->mc.b, t->mc.c, t->mc.p,
                                   t->mc_norm.b, t->mc_norm.c, t->mc_norm.p);
            else if (!rc)
                rc = strbuf_printf(b, ",,,,,,\n");
        }
    return rc;
}

int suite_write(const eval_suite *s, const suite_run_info *info, const char *dir) {
    char path[4096], name[256];
    if (dir_create(dir)) return -1;
    for (int i = 0; i < s->n_tasks; i++)
        for (int w = 0; w < 2; w++) {
            if (!s->scored[w]) continue;
            snprintf(name, sizeof name, "%s%s.jsonl", s->tasks[i].name, w ? ".compared" : "");
            if (path_join(path, sizeof path, dir, name) ||
                mcq_results_write(path, &s->tasks[i].set, s->tasks[i].res[w]))
                return -1;
        }
    cJSON *j = results_json(s, info);
    char *text = j ? cJSON_Print(j) : NULL;
    cJSON_Delete(j);
    if (!text) return err_set("%s: out of memory", dir);
    int rc = path_join(path, sizeof path, dir, "results.json");
    if (!rc) rc = file_write_atomic(path, text, strlen(text));
    free(text);
    if (rc) return rc;
    strbuf csv;
    strbuf_init(&csv);
    if (results_csv(s, &csv)) rc = err_set("%s: out of memory", dir);
    else if (!(rc = path_join(path, sizeof path, dir, "results.csv")))
        rc = file_write_atomic(path, csv.data, csv.len);
    strbuf_free(&csv);
    return rc;
}
