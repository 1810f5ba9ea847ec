#include "train/metrics.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/error.h"
#include "common/fileio.h"

static int truncate_after(const char *path, int64_t keep_until) {
    if (!path_exists(path)) return 0;
    char *text;
    size_t len;
    if (file_read_all(path, &text, &len)) return -1;
    char *out = malloc(len + 1);
    if (!out) {
        free(text);
        return err_set("%s: out of memory", path);
    }
    size_t n = 0;
    int changed = 0;
    for (char *line = text; *line;) {
        char *end = strchr(line, '\n');
        size_t l = end ? (size_t)(end - line) + 1 : strlen(line);
        char save = line[l - (end ? 1 : 0)];
        line[l - (end ? 1 : 0)] = '\0';
        cJSON *j = cJSON_Parse(line);
        const cJSON *step = cJSON_GetObjectItemCaseSensitive(j, "step");
        // A torn last line (killed mid-write) is dropped along with later steps.
        int keep = end && cJSON_IsNumber(step) && step->valuedouble <= (double)keep_until;
        cJSON_Delete(j);
        line[l - (end ? 1 : 0)] = save;
        if (keep) {
            memcpy(out + n, line, l);
            n += l;
        } else {
            changed = 1;
        }
        line += l;
    }
    int rc = changed ? file_write_atomic(path, out, n) : 0;
    free(out);
    free(text);
    return rc;
}

int metrics_log_open(metrics_log *m, const char *out_dir, int64_t keep_until) {
    memset(m, 0, sizeof *m);
    snprintf(m->path, sizeof m->path, "%s/metrics.jsonl", out_dir);
    if (truncate_after(m->path, keep_until)) return -1;
    m->f = fopen(m->path, "a");
    if (!m->f) return err_set("%s: cannot open for appending: %s", m->path, strerror(errno));
    return 0;
}

static int finish_line(metrics_log *m) {
    if (fflush(m->f) != 0 || ferror(m->f))
        return err_set("%s: write failed: %s", m->path, strerror(errno));
    return 0;
}

// The evaluation fields of r, each as ", key: value". Accuracies are ratios of item counts;
// 17 digits keep the exact double.
static void write_eval(FILE *f, const metrics_row *r) {
    if (!r->has_val) return;
    if (r->has_val_loss && r->val_pref)
        fprintf(f, ", \"val_loss\": %.17g", r->val_loss);
    else if (r->has_val_loss)
        fprintf(f, ", \"val_loss\": %.17g, \"val_ppl\": %.9g", r->val_loss, exp(r->val_loss));
    for (int i = 0; r->val_pref && i < r->n_pref; i++)
        fprintf(f, ", \"val_%s\": %.17g", r->pref_names[i], r->val_pref[i]);
    for (int i = 0; i < r->n_mcq; i++)
        fprintf(f, ", \"mcq/%s/acc\": %.17g, \"mcq/%s/acc_norm\": %.17g", r->mcq_sets[i].name,
                r->mcq_acc[i], r->mcq_sets[i].name, r->mcq_acc_norm[i]);
}

int metrics_log_step(metrics_log *m, const metrics_row *r) {
    fprintf(m->f,
            "{\"step\": %lld, \"loss\": %.17g, \"lr\": %.9g, \"grad_norm\": %.9g, \"tokens\": %lld, "
            "\"tok_per_s\": %.1f, \"elapsed_s\": %.3f, \"world_size\": %d",
            (long long)r->step, r->loss, r->lr, r->grad_norm, (long long)r->tokens, r->tok_per_s,
            r->elapsed_s, r->world_size);
    if (r->world_size > 1)
        fprintf(m->f, ", \"comm_ms\": %.3f, \"comm_mb\": %.3f", r->comm_ms, r->comm_mb);
    for (int i = 0; i < r->n_pref; i++)
        fprintf(m->f, ", \"%s\": %.17g", r->pref_names[i], r->pref[i]);
    write_eval(m->f, r);
    fputs("}\n", m->f);
    return finish_line(m);
}

int metrics_log_eval(metrics_log *m, const metrics_row *r) {
    fprintf(m->f, "{\"step\": %lld", (long long)r->step);
    write_eval(m->f, r);
    fprintf(m->f, ", \"elapsed_s\": %.3f}\n", r->elapsed_s);
    return finish_line(m);
}

int metrics_log_sync(metrics_log *m) {
    if (finish_line(m)) return -1;
    if (fsync(fileno(m->f)) != 0) return err_set("%s: fsync failed: %s", m->path, strerror(errno));
    return 0;
}

void metrics_log_close(metrics_log *m) {
    if (m->f) fclose(m->f);
    m->f = NULL;
}
