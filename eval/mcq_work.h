// What mcq_score.c works out for one item before running the model, shared by its two ways of
// scoring it: the full forward pass of lm_plan (mcq_score.c) and the KV-cache decoder
// (mcq_score_kv.c).
#ifndef MEDTUNE_EVAL_MCQ_WORK_H
#define MEDTUNE_EVAL_MCQ_WORK_H

#include <stdint.h>

#include "eval/mcq.h"

typedef struct {
    int32_t *ctx;                          // context tokens (owned); the EOS token if empty
    int ctx_len;
    int n_rows;
    int32_t *row_tokens[MCQ_MAX_CHOICES];  // distinct model inputs (owned)
    int row_len[MCQ_MAX_CHOICES];
    int choice_row[MCQ_MAX_CHOICES];
    int32_t *cont[MCQ_MAX_CHOICES];        // continuation tokens (owned)
    int cont_len[MCQ_MAX_CHOICES];
    int input_len[MCQ_MAX_CHOICES];        // length of the choice's own model input
    int T;                                 // padded length
    int truncated;
} item_work;

// log softmax(logits[V])[target], in double.
double mcq_log_prob(const float *logits, int V, int target);
// Sets chosen and chosen_norm from ll and n_chars (first on ties).
void mcq_pick(const mcq_item *it, mcq_result *r);
// The KV-cache scorer: fills out[i].ll of every item and picks, reporting progress as
// mcq_score does.
int mcq_score_kv(const model *m, const lora_adapter *lora, const mcq_set *s,
                 const item_work *works, const mcq_options *o, mcq_result *out);

#endif
