// Log-likelihood scoring of multiple-choice items, following lm-evaluation-harness's HF model
// (TemplateLM._encode_pair and HFLM._loglikelihood_tokens):
//   - trailing whitespace of the context moves to the front of the continuation;
//   - continuation tokens = encode(context + continuation)[len(encode(context)):], so a BPE
//     merge across the boundary is scored as the harness scores it;
//   - the model input is (context + continuation)[-(max_len + 1):][:-1], i.e. contexts too
//     long for the model are cut from the left;
//   - a continuation's log-likelihood is the sum over its tokens of log_softmax(logits).
// By default the model runs through the KV-cache decoder (mcq_score_kv.c). The full forward
// path here is the reference it is tested against: the choices of an item share their
// context, so their inputs often coincide (one-token continuations like " A".." D" need the
// context alone): a choice whose input is a prefix of another's reads its log-probabilities
// from that row, which under causal attention are the same numbers. The remaining rows of an
// item form one padded batch (one lm_plan shape); items are run grouped by shape so plans are
// rebuilt rarely, and reported in file order.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/error.h"
#include "common/strbuf.h"
#include "eval/mcq.h"
#include "eval/mcq_work.h"
#include "model/transformer.h"

enum { SEQ_BUCKET = 16 };  // padded lengths are multiples of this: fewer distinct plan shapes

static void work_free(item_work *w) {
    for (int i = 0; i < MCQ_MAX_CHOICES; i++) {
        free(w->row_tokens[i]);
        free(w->cont[i]);
    }
    free(w->ctx);
    memset(w, 0, sizeof *w);
}

static int utf8_chars(const char *s) {
    int n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static int check_ids(const id_vec *v, int vocab, const mcq_item *it) {
    for (size_t i = 0; i < v->len; i++)
        if (v->data[i] < 0 || v->data[i] >= vocab)
            return err_set("item %s: token id %d is outside the model's vocabulary (%d); the "
                           "tokenizer does not belong to this model", it->id, v->data[i], vocab);
    return 0;
}

static int32_t *copy_ids(const int32_t *src, size_t n) {
    int32_t *p = malloc((n ? n : 1) * sizeof *p);
    if (p && n) memcpy(p, src, n * sizeof *p);
    return p;
}

// Tokenizes one item and works out its rows.
static int prepare_item(const tokenizer *tok, int vocab, const mcq_item *it,
                        const mcq_options *o, item_work *w, mcq_result *res) {
    memset(w, 0, sizeof *w);
    const size_t clen = strlen(it->context);
    const size_t keep = py_rstrip_len(it->context, clen);
    id_vec ctx = {0}, whole = {0};
    int rc = 0;
    if (keep == 0) {
        // An empty context is scored after the end-of-text token, as the harness does.
        int eos = tokenizer_eos_id(tok);
        if (eos < 0) return err_set("item %s: empty context and no EOS token to stand for it", it->id);
        if (id_vec_push(&ctx, eos)) return err_set("mcq: out of memory");
    } else if (tokenizer_encode(tok, it->context, keep, o->add_special, &ctx)) {
        return err_prefix("item %s", it->id);
    }
    strbuf text;
    strbuf_init(&text);
    int order[MCQ_MAX_CHOICES];
    for (int c = 0; c < it->n_choices && !rc; c++) {
        const char *choice = it->choices[c];
        // context (trailing whitespace included, now leading the continuation) + " " + choice
        strbuf_clear(&text);
        if (strbuf_printf(&text, "%s %s", it->context, choice)) {
            rc = err_set("mcq: out of memory");
            break;
        }
        whole.len = 0;
        if (tokenizer_encode(tok, text.data, text.len, o->add_special, &whole)) {
            rc = err_prefix("item %s", it->id);
            break;
        }
        size_t skip = keep == 0 ? 0 : ctx.len;
        if (whole.len <= skip) {
            rc = err_set("item %s: the continuation \" %s\" adds no token to the context", it->id,
                         choice);
            break;
        }
        const int n_cont = (int)(whole.len - skip);
        if (n_cont > o->max_len) {
            rc = err_set("item %s: the continuation \" %s\" has %d tokens, more than the %d the "
                         "model takes", it->id, choice, n_cont, o->max_len);
            break;
        }
        if ((rc = check_ids(&whole, vocab, it)) || (rc = check_ids(&ctx, vocab, it))) break;
        w->cont[c] = copy_ids(whole.data + skip, (size_t)n_cont);
        if (!w->cont[c]) {
            rc = err_set("mcq: out of memory");
            break;
        }
        w->cont_len[c] = n_cont;
        res->n_tokens[c] = n_cont;
        res->n_chars[c] = utf8_chars(choice);
        // input = (ctx + cont)[-(max_len+1):][:-1]
        int full = (int)ctx.len + n_cont;
        int dropped = full > o->max_len + 1 ? full - (o->max_len + 1) : 0;
        if (dropped > w->truncated) w->truncated = dropped;
        w->input_len[c] = full - dropped - 1;
        order[c] = c;
    }
    // Rows: choices by decreasing input length; a choice whose input is a prefix of an
    // existing row reuses it.
    int32_t *input = NULL;
    if (!rc && !(input = malloc((size_t)(ctx.len + (size_t)o->max_len + 1) * sizeof *input)))
        rc = err_set("mcq: out of memory");
    for (int a = 0; a < it->n_choices && !rc; a++)
        for (int b = a + 1; b < it->n_choices; b++)
            if (w->input_len[order[b]] > w->input_len[order[a]]) {
                int t = order[a];
                order[a] = order[b];
                order[b] = t;
            }
    for (int k = 0; k < it->n_choices && !rc; k++) {
        int c = order[k];
        int full = (int)ctx.len + w->cont_len[c], L = w->input_len[c];
        int start = full - 1 - L;  // first token of the input within ctx + cont
        for (int t = 0; t < L; t++) {
            int g = start + t;
            input[t] = g < (int)ctx.len ? ctx.data[g] : w->cont[c][g - (int)ctx.len];
        }
        int row = -1;
        for (int r = 0; r < w->n_rows && row < 0; r++)
            if (w->row_len[r] >= L && !memcmp(w->row_tokens[r], input, (size_t)L * sizeof *input))
                row = r;
        if (row < 0) {
            row = w->n_rows++;
            if (!(w->row_tokens[row] = copy_ids(input, (size_t)L))) rc = err_set("mcq: out of memory");
            w->row_len[row] = L;
            if (L > w->T) w->T = L;
        }
        w->choice_row[c] = row;
    }
    if (!rc && !(w->ctx = copy_ids(ctx.data, ctx.len))) rc = err_set("mcq: out of memory");
    w->ctx_len = (int)ctx.len;
    w->T = (w->T + SEQ_BUCKET - 1) / SEQ_BUCKET * SEQ_BUCKET;
    if (w->T > o->max_len) w->T = o->max_len;
    if (w->T < 1) w->T = 1;
    res->truncated = w->truncated;
    free(input);
    strbuf_free(&text);
    id_vec_free(&ctx);
    id_vec_free(&whole);
    if (rc) work_free(w);
    return rc;
}

// log softmax(logits)[target], in double.
double mcq_log_prob(const float *logits, int V, int target) {
    float mx = logits[0];
    for (int v = 1; v < V; v++) mx = logits[v] > mx ? logits[v] : mx;
    double sum = 0.0;
    for (int v = 0; v < V; v++) sum += exp((double)logits[v] - (double)mx);
    return (double)logits[target] - (double)mx - log(sum);
}

void mcq_pick(const mcq_item *it, mcq_result *r) {
    r->chosen = r->chosen_norm = 0;
    for (int c = 1; c < it->n_choices; c++) {
        if (r->ll[c] > r->ll[r->chosen]) r->chosen = c;
        if (r->ll[c] / r->n_chars[c] > r->ll[r->chosen_norm] / r->n_chars[r->chosen_norm])
            r->chosen_norm = c;
    }
}

static int cmp_shape(const void *pa, const void *pb, void *ctx) {
    const item_work *works = ctx;
    const item_work *a = &works[*(const size_t *)pa], *b = &works[*(const size_t *)pb];
    if (a->n_rows != b->n_rows) return a->n_rows - b->n_rows;
    if (a->T != b->T) return a->T - b->T;
    return *(const size_t *)pa < *(const size_t *)pb ? -1 : 1;
}

// The reference path: every row through lm_plan's training forward, all T x V logits.
static int score_full(const model *m, const lora_adapter *lora, const mcq_set *s,
                      const item_work *works, const mcq_options *o, mcq_result *out) {
    const int V = m->cfg.vocab_size;
    size_t *order = malloc((s->n ? s->n : 1) * sizeof *order);
    if (!order) return err_set("mcq: out of memory for %zu items", s->n);
    for (size_t i = 0; i < s->n; i++) order[i] = i;
    qsort_r(order, s->n, sizeof *order, cmp_shape, (void *)works);
    int rc = 0;
    lm_plan plan;
    int have_plan = 0;
    float *logits = NULL;
    int32_t *tokens = NULL, *targets = NULL;
    size_t cap = 0;
    double t0 = clock_now_s(), last = t0;
    for (size_t k = 0; k < s->n && !rc; k++) {
        const size_t i = order[k];
        const item_work *w = &works[i];
        const mcq_item *it = &s->items[i];
        const int B = w->n_rows, T = w->T;
        if (!have_plan || plan.B != B || plan.T != T) {
            if (have_plan) lm_plan_free(&plan);
            have_plan = 0;
            if ((rc = lm_plan_init(&plan, m, lora, B, T))) break;
            have_plan = 1;
        }
        const size_t N = (size_t)B * T;
        if (N > cap) {
            free(logits);
            free(tokens);
            free(targets);
            logits = malloc(N * (size_t)V * sizeof *logits);
            tokens = malloc(N * sizeof *tokens);
            targets = malloc(N * sizeof *targets);
            cap = N;
            if (!logits || !tokens || !targets) {
                rc = err_set("mcq: out of memory for logits of %d x %d tokens", B, T);
                break;
            }
        }
        for (int r = 0; r < B; r++)
            for (int t = 0; t < T; t++) {
                // Padding after a row's end cannot influence earlier positions (causal).
                tokens[(size_t)r * T + t] = t < w->row_len[r] ? w->row_tokens[r][t] : 0;
                targets[(size_t)r * T + t] = -1;
            }
        lm_batch batch = {tokens, targets, NULL, NULL};
        lm_logits(&plan, &batch, logits);
        mcq_result *res = &out[i];
        for (int c = 0; c < it->n_choices; c++) {
            const int r = w->choice_row[c], n = w->cont_len[c], L = w->input_len[c];
            double ll = 0.0;
            for (int j = 0; j < n; j++) {
                const size_t pos = (size_t)r * T + (size_t)(L - n + j);
                ll += mcq_log_prob(logits + pos * V, V, w->cont[c][j]);
            }
            res->ll[c] = ll;
        }
        mcq_pick(it, res);
        double now = clock_now_s();
        if (o->progress && (now - last > 10.0 || k + 1 == s->n)) {
            fprintf(stderr, "eval: %zu/%zu items, %.2f items/s\n", k + 1, s->n,
                    (double)(k + 1) / (now - t0));
            last = now;
        }
    }
    if (have_plan) lm_plan_free(&plan);
    free(logits);
    free(tokens);
    free(targets);
    free(order);
    return rc;
}

int mcq_score(const model *m, const lora_adapter *lora, const tokenizer *tok, const mcq_set *s,
              const mcq_options *o, mcq_result *out) {
    if (o->max_len < 2) return err_set("mcq: max length %d is too short", o->max_len);
    item_work *works = calloc(s->n ? s->n : 1, sizeof *works);
    if (!works) return err_set("mcq: out of memory for %zu items", s->n);
    int rc = 0;
    for (size_t i = 0; i < s->n && !rc; i++) {
        memset(&out[i], 0, sizeof out[i]);
        rc = prepare_item(tok, m->cfg.vocab_size, &s->items[i], o, &works[i], &out[i]);
    }
    if (!rc)
        rc = o->full_forward ? score_full(m, lora, s, works, o, out)
                             : mcq_score_kv(m, lora, s, works, o, out);
    for (size_t i = 0; i < s->n; i++) work_free(&works[i]);
    free(works);
    return rc;
}
