#include "tools/train_mcq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

static int score(void *ctx, int i, const model *m, const lora_adapter *lora, double *acc,
                 double *acc_norm) {
    train_mcq *q = ctx;
    const mcq_set *s = &q->sets[i];
    // `medtune eval --mcq`'s defaults: no special tokens, the model's context as max length.
    mcq_options o = {.max_len = m->cfg.max_position_embeddings > 1
                                    ? m->cfg.max_position_embeddings
                                    : 2048};
    if (mcq_score(m, lora, q->tok, s, &o, q->results)) return -1;
    mcq_summary sum;
    mcq_summarize(s, q->results, &sum);
    *acc = sum.acc;
    *acc_norm = sum.acc_norm;
    return 0;
}

int train_mcq_init(train_mcq *q, const train_config *tc, const char *config_path) {
    memset(q, 0, sizeof *q);
    q->scorer = (trainer_mcq_scorer){q, score};
    size_t most = 0;
    for (int i = 0; i < tc->n_eval_mcq; i++) {
        const train_mcq_set *e = &tc->eval_mcq[i];
        mcq_format f;
        int rc = 0;
        if (e->format[0] && mcq_format_from_name(e->format, &f))
            rc = err_set("%s: eval_mcq[%d].format: unknown '%s' (known: pubmedqa, medqa, "
                         "medmcqa, mmlu)",
                         config_path, i, e->format);
        else if (!e->format[0])
            rc = mcq_format_detect(e->path, &f);
        if (!rc) rc = mcq_set_read(&q->sets[i], e->path, f, (size_t)e->limit, NULL);
        if (rc) {
            train_mcq_free(q);
            return -1;
        }
        q->n = i + 1;
        if (q->sets[i].n_skipped)
            fprintf(stderr, "medtune train: eval_mcq %s: skipped %zu malformed record%s (first: "
                            "%s)\n",
                    e->name, q->sets[i].n_skipped, q->sets[i].n_skipped == 1 ? "" : "s",
                    q->sets[i].first_skip);
        if (q->sets[i].n > most) most = q->sets[i].n;
    }
    if (!q->n) return 0;
    q->results = calloc(most, sizeof *q->results);
    if (!q->results || !(q->tok = tokenizer_load(tc->model))) {
        if (!q->results) err_set("%s: out of memory for MCQ results", tc->eval_mcq[0].path);
        train_mcq_free(q);
        return -1;
    }
    return 0;
}

void train_mcq_free(train_mcq *q) {
    for (int i = 0; i < q->n; i++) mcq_set_free(&q->sets[i]);
    free(q->results);
    if (q->tok) tokenizer_free(q->tok);
    memset(q, 0, sizeof *q);
}
