// Suite files: reading, scoring every task, the paired comparison.
#include "eval/suite.h"

#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/error.h"
#include "eval/stats.h"

static const char *const SUITE_KEYS[] = {"name", "max_len", "add_special", "tasks", NULL};
static const char *const TASK_KEYS[] = {"name", "format", "path", "gold", "limit", NULL};

static char *dup_or_null(const char *s) {
    return s ? strdup(s) : NULL;
}

// A task name becomes a file name in the output directory and a CSV field.
static int name_ok(const char *s) {
    if (!*s || strlen(s) > 100) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-' || *s == '.'))
            return 0;
    return 1;
}

static int task_load(const config *c, int i, suite_task *t) {
    char key[64];
    const char *name, *format, *path, *gold;
    snprintf(key, sizeof key, "tasks.%d", i);
    if (config_check_keys(c, key, TASK_KEYS)) return -1;
#define TASK_KEY(k) (snprintf(key, sizeof key, "tasks.%d." k, i), key)
    if (config_string(c, TASK_KEY("name"), NULL, &name) ||
        config_string(c, TASK_KEY("format"), NULL, &format) ||
        config_string(c, TASK_KEY("path"), NULL, &path) ||
        config_string(c, TASK_KEY("gold"), NULL, &gold) ||
        config_int(c, TASK_KEY("limit"), 0, &t->limit))
        return -1;
    if (!name || !name_ok(name))
        return err_set("%s: tasks.%d.name: %s", c->name, i,
                       name ? "use 1-100 of the characters A-Z a-z 0-9 _ - ." : "missing");
    if (!path) return err_set("%s: tasks.%d.path: missing", c->name, i);
    if (t->limit < 0) return err_set("%s: tasks.%d.limit: must be >= 0", c->name, i);
    t->name = strdup(name);
    t->path = strdup(path);
    t->gold = dup_or_null(gold);
    if (!t->name || !t->path || (gold && !t->gold)) return err_set("%s: out of memory", c->name);
    if (format ? mcq_format_from_name(format, &t->format) : mcq_format_detect(path, &t->format))
        return err_prefix("%s: tasks.%d (%s)", c->name, i, name);
    if (mcq_set_read(&t->set, path, t->format, (size_t)t->limit, gold))
        return err_prefix("%s: tasks.%d (%s)", c->name, i, name);
    return 0;
#undef TASK_KEY
}

int suite_load(eval_suite *s, const char *path) {
    memset(s, 0, sizeof *s);
    config c;
    if (config_load(&c, path)) return -1;
    const char *name;
    int n = 0, rc = 0;
    if (config_check_keys(&c, "", SUITE_KEYS) || config_string(&c, "name", NULL, &name) ||
        config_int(&c, "max_len", 0, &s->max_len) ||
        config_bool(&c, "add_special", 0, &s->add_special) ||
        config_array_size(&c, "tasks", &n)) {
        config_free(&c);
        return -1;
    }
    if (s->max_len && config_check_range(&c, "max_len", (double)s->max_len, 2, 1 << 20, 0, 1))
        rc = -1;
    else if (n == 0)
        rc = err_set("%s: tasks: no task listed", path);
    else if (!(s->name = strdup(name ? name : path)) || !(s->tasks = calloc((size_t)n, sizeof *s->tasks)))
        rc = err_set("%s: out of memory", path);
    for (int i = 0; i < n && !rc; i++) {
        s->n_tasks = i + 1;
        rc = task_load(&c, i, &s->tasks[i]);
        for (int j = 0; j < i && !rc; j++)
            if (!strcmp(s->tasks[j].name, s->tasks[i].name))
                rc = err_set("%s: tasks.%d.name: \"%s\" is also task %d", path, i,
                             s->tasks[i].name, j);
    }
    config_free(&c);
    if (rc) suite_free(s);
    return rc;
}

void suite_free(eval_suite *s) {
    for (int i = 0; i < s->n_tasks; i++) {
        suite_task *t = &s->tasks[i];
        free(t->name);
        free(t->path);
        free(t->gold);
        mcq_set_free(&t->set);
        free(t->res[0]);
        free(t->res[1]);
    }
    free(s->tasks);
    free(s->name);
    memset(s, 0, sizeof *s);
}

int suite_score(eval_suite *s, int which, const model *m, const lora_adapter *lora,
                const tokenizer *tok, const mcq_options *o) {
    for (int i = 0; i < s->n_tasks; i++) {
        suite_task *t = &s->tasks[i];
        if (o->progress)
            fprintf(stderr, "eval: %s (%zu items)%s\n", t->name, t->set.n,
                    which ? " with the compared adapter" : "");
        if (!(t->res[which] = calloc(t->set.n, sizeof *t->res[which])))
            return err_set("eval: out of memory for %zu results", t->set.n);
        if (mcq_score(m, lora, tok, &t->set, o, t->res[which]))
            return err_prefix("task %s", t->name);
        mcq_summarize(&t->set, t->res[which], &t->sum[which]);
    }
    s->scored[which] = 1;
    return 0;
}

static void count_discordant(const suite_task *t, int norm, suite_mcnemar *mc, suite_mcnemar *all) {
    for (size_t k = 0; k < t->set.n; k++) {
        const int gold = t->set.items[k].gold;
        const int a = (norm ? t->res[0][k].chosen_norm : t->res[0][k].chosen) == gold;
        const int b = (norm ? t->res[1][k].chosen_norm : t->res[1][k].chosen) == gold;
        mc->b += a && !b;
        mc->c += b && !a;
        all->b += a && !b;
        all->c += b && !a;
    }
    mc->p = stats_mcnemar_exact(mc->b, mc->c);
}

void suite_compare(eval_suite *s) {
    memset(&s->mc, 0, sizeof s->mc);
    memset(&s->mc_norm, 0, sizeof s->mc_norm);
    for (int i = 0; i < s->n_tasks; i++) {
        suite_task *t = &s->tasks[i];
        memset(&t->mc, 0, sizeof t->mc);
        memset(&t->mc_norm, 0, sizeof t->mc_norm);
        count_discordant(t, 0, &t->mc, &s->mc);
        count_discordant(t, 1, &t->mc_norm, &s->mc_norm);
    }
    s->mc.p = stats_mcnemar_exact(s->mc.b, s->mc.c);
    s->mc_norm.p = stats_mcnemar_exact(s->mc_norm.b, s->mc_norm.c);
}

void suite_average(const eval_suite *s, int which, double *acc, double *acc_norm) {
    *acc = *acc_norm = 0.0;
    for (int i = 0; i < s->n_tasks; i++) {
        *acc += s->tasks[i].sum[which].acc / s->n_tasks;
        *acc_norm += s->tasks[i].sum[which].acc_norm / s->n_tasks;
    }
}
