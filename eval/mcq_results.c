// Accuracy summaries and the per-item results file of a multiple-choice evaluation.
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileio.h"
#include "eval/mcq.h"
#include "eval/stats.h"

void mcq_summarize(const mcq_set *s, const mcq_result *r, mcq_summary *sum) {
    memset(sum, 0, sizeof *sum);
    sum->n = s->n;
    for (size_t i = 0; i < s->n; i++) {
        sum->correct += r[i].chosen == s->items[i].gold;
        sum->correct_norm += r[i].chosen_norm == s->items[i].gold;
        sum->truncated_items += r[i].truncated > 0;
    }
    sum->acc = s->n ? (double)sum->correct / (double)s->n : 0.0;
    sum->acc_norm = s->n ? (double)sum->correct_norm / (double)s->n : 0.0;
    stats_wilson(sum->correct, s->n, STATS_Z95, &sum->ci_lo, &sum->ci_hi);
    stats_wilson(sum->correct_norm, s->n, STATS_Z95, &sum->ci_norm_lo, &sum->ci_norm_hi);
    sum->stderr_acc = stats_binary_stderr(sum->correct, s->n);
    sum->stderr_norm = stats_binary_stderr(sum->correct_norm, s->n);
}

static cJSON *item_json(const mcq_item *it, const mcq_result *r) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "id", it->id);
    cJSON_AddNumberToObject(o, "gold", it->gold);
    cJSON_AddNumberToObject(o, "chosen", r->chosen);
    cJSON_AddNumberToObject(o, "chosen_norm", r->chosen_norm);
    cJSON_AddBoolToObject(o, "correct", r->chosen == it->gold);
    cJSON_AddBoolToObject(o, "correct_norm", r->chosen_norm == it->gold);
    cJSON *choices = cJSON_AddArrayToObject(o, "choices");
    cJSON *ll = cJSON_AddArrayToObject(o, "loglikelihoods");
    cJSON *chars = cJSON_AddArrayToObject(o, "choice_chars");
    cJSON *toks = cJSON_AddArrayToObject(o, "continuation_tokens");
    for (int c = 0; c < it->n_choices; c++) {
        cJSON_AddItemToArray(choices, cJSON_CreateString(it->choices[c]));
        cJSON_AddItemToArray(ll, cJSON_CreateNumber(r->ll[c]));
        cJSON_AddItemToArray(chars, cJSON_CreateNumber(r->n_chars[c]));
        cJSON_AddItemToArray(toks, cJSON_CreateNumber(r->n_tokens[c]));
    }
    cJSON_AddNumberToObject(o, "truncated", r->truncated);
    return o;
}

int mcq_results_write(const char *path, const mcq_set *s, const mcq_result *r) {
    atomic_writer w;
    if (atomic_writer_open(&w, path)) return -1;
    int rc = 0;
    for (size_t i = 0; i < s->n && !rc; i++) {
        cJSON *o = item_json(&s->items[i], &r[i]);
        char *line = o ? cJSON_PrintUnformatted(o) : NULL;
        if (!line) rc = err_set("%s: out of memory", path);
        else if (!(rc = atomic_writer_write(&w, line, strlen(line))))
            rc = atomic_writer_write(&w, "\n", 1);
        free(line);
        cJSON_Delete(o);
    }
    if (rc) {
        atomic_writer_abort(&w);
        return rc;
    }
    return atomic_writer_commit(&w);
}
