// The fast way to score multiple-choice items: the prompt of an item runs once through the
// KV-cache decoder (model/decoder.c), which leaves the logits of its last position (they score
// the first token of every choice) and the keys and values of every position. The remaining
// tokens of all choices then run together in one decoder_forward_branches pass on top of that
// cache, each choice seeing the prompt and its own earlier tokens. Logits are computed only at
// the positions scored, never for the whole T x V. The numbers are those of the full forward
// pass (mcq_score.c's score_full) up to float summation order: tests/eval/check_mcq_kv.py.
// An item whose context was cut from the left has a different cut for each choice (the cut
// depends on the continuation's length), so its choices run one after another instead.
#include <stdio.h>
#include <stdlib.h>

#include "common/clock.h"
#include "common/error.h"
#include "eval/mcq_work.h"
#include "model/decoder.h"

// Prompt rows per decoder call: a whole prompt in one call packs each weight matrix once
// (64-row chunks spent a quarter of the time packing). Branch rows per pass are fewer, as
// each needs a row of V logits.
enum { PROMPT_ROWS = 512, BRANCH_ROWS = 64 };

// Cache positions an item needs: the prompt and the branch rows run on top of it.
static int item_positions(const item_work *w, int n_choices) {
    int need = 0, branch_rows = 0;
    for (int c = 0; c < n_choices; c++) {
        need = w->input_len[c] > need ? w->input_len[c] : need;
        branch_rows += w->cont_len[c] - 1;
    }
    if (w->truncated) return need;
    if (branch_rows > BRANCH_ROWS) branch_rows = BRANCH_ROWS;
    return w->ctx_len + branch_rows > need ? w->ctx_len + branch_rows : need;
}

// Runs the input tokens[0..L) of one choice from an empty cache and sums the log-probabilities
// of its n continuation tokens, predicted by the last n positions.
static int score_alone(decoder *d, const int32_t *tokens, int L, const int32_t *cont, int n,
                       float *logits, double *ll) {
    const int V = d->m->cfg.vocab_size;
    decoder_reset(d);
    if (L > n && decoder_forward(d, tokens, L - n, NULL, 0)) return -1;
    if (decoder_forward(d, tokens + L - n, n, logits, 1)) return -1;
    *ll = 0.0;
    for (int j = 0; j < n; j++) *ll += mcq_log_prob(logits + (size_t)j * V, V, cont[j]);
    return 0;
}

// Adds the log-probabilities of tokens 1.. of the multi-token choices, run as branches of the
// cached prompt in groups of at most BRANCH_ROWS rows (a longer choice runs alone).
static int score_branches(decoder *d, const mcq_item *it, const item_work *w, float *logits,
                          mcq_result *res) {
    const int V = d->m->cfg.vocab_size, p0 = d->cache.n_past;
    int32_t tokens[BRANCH_ROWS];
    int start[MCQ_MAX_CHOICES + 1], members[MCQ_MAX_CHOICES];
    int c = 0;
    while (c < it->n_choices) {
        int nb = 0, rows = 0;
        start[0] = 0;
        for (; c < it->n_choices; c++) {
            const int n = w->cont_len[c] - 1;
            if (n == 0) continue;
            if (rows + n > BRANCH_ROWS || p0 + rows + n > d->cache.n_ctx) break;
            for (int j = 0; j < n; j++) tokens[rows + j] = w->cont[c][j];
            rows += n;
            members[nb++] = c;
            start[nb] = rows;
        }
        if (nb > 0) {
            if (decoder_forward_branches(d, tokens, start, nb, logits)) return -1;
            for (int b = 0; b < nb; b++) {
                const int ch = members[b];
                for (int j = 0; j < start[b + 1] - start[b]; j++)
                    res->ll[ch] += mcq_log_prob(logits + (size_t)(start[b] + j) * V, V,
                                                w->cont[ch][j + 1]);
            }
        } else if (c < it->n_choices) {  // too long to share a pass: run on the prompt alone
            const int n = w->cont_len[c] - 1;
            if (decoder_forward(d, w->cont[c], n, logits, 1)) return -1;
            for (int j = 0; j < n; j++)
                res->ll[c] += mcq_log_prob(logits + (size_t)j * V, V, w->cont[c][j + 1]);
            if (decoder_rewind(d, p0)) return -1;
            c++;
        }
    }
    return 0;
}

static int score_item(decoder *d, const mcq_item *it, const item_work *w, float *logits,
                      mcq_result *res) {
    const int V = d->m->cfg.vocab_size;
    if (w->truncated) {
        for (int c = 0; c < it->n_choices; c++)
            if (score_alone(d, w->row_tokens[w->choice_row[c]], w->input_len[c], w->cont[c],
                            w->cont_len[c], logits, &res->ll[c]))
                return -1;
        return 0;
    }
    decoder_reset(d);
    if (decoder_forward(d, w->ctx, w->ctx_len, logits, 0)) return -1;
    for (int c = 0; c < it->n_choices; c++) res->ll[c] = mcq_log_prob(logits, V, w->cont[c][0]);
    return score_branches(d, it, w, logits, res);
}

int mcq_score_kv(const model *m, const lora_adapter *lora, const mcq_set *s,
                 const item_work *works, const mcq_options *o, mcq_result *out) {
    const int V = m->cfg.vocab_size, max_pos = m->cfg.max_position_embeddings;
    int n_ctx = 1, logit_rows = BRANCH_ROWS;
    for (size_t i = 0; i < s->n; i++) {
        const int need = item_positions(&works[i], s->items[i].n_choices);
        if (need > max_pos)
            return err_set("item %s: needs %d positions, more than the model's %d "
                           "(max_position_embeddings); lower --max-len", s->items[i].id, need,
                           max_pos);
        n_ctx = need > n_ctx ? need : n_ctx;
        for (int c = 0; c < s->items[i].n_choices; c++)
            logit_rows = works[i].cont_len[c] > logit_rows ? works[i].cont_len[c] : logit_rows;
    }
    decoder d;
    if (decoder_init_rows(&d, m, lora, n_ctx, n_ctx < PROMPT_ROWS ? n_ctx : PROMPT_ROWS))
        return -1;
    float *logits = malloc((size_t)logit_rows * (size_t)V * sizeof *logits);
    int rc = logits ? 0 : err_set("mcq: out of memory for %d x %d logits", logit_rows, V);
    double t0 = clock_now_s(), last = t0;
    for (size_t i = 0; i < s->n && !rc; i++) {
        if (score_item(&d, &s->items[i], &works[i], logits, &out[i])) {
            rc = err_prefix("item %s", s->items[i].id);
            break;
        }
        mcq_pick(&s->items[i], &out[i]);
        double now = clock_now_s();
        if (o->progress && (now - last > 10.0 || i + 1 == s->n)) {
            fprintf(stderr, "eval: %zu/%zu items, %.2f items/s\n", i + 1, s->n,
                    (double)(i + 1) / (now - t0));
            last = now;
        }
    }
    free(logits);
    decoder_free(&d);
    return rc;
}
