// Multiple-choice benchmarks scored by log-likelihood, the way lm-evaluation-harness scores its
// `multiple_choice` tasks: each item is a context (the task's prompt) and a few continuations
// (" yes", " A", ...); the prediction is the continuation with the highest summed
// log-likelihood (acc) or the highest log-likelihood per character of the choice (acc_norm).
// Readers turn the original dataset files into items (mcq_readers.c), the prompts are built in
// mcq_prompt.c, and mcq_score.c runs the model. docs/eval.md gives the exact prompts.
#ifndef MEDTUNE_EVAL_MCQ_H
#define MEDTUNE_EVAL_MCQ_H

#include <stddef.h>

#include "tokenizer/tokenizer.h"
#include "model/lora.h"
#include "model/model.h"

typedef enum { MCQ_PUBMEDQA, MCQ_MEDQA, MCQ_MEDMCQA, MCQ_MMLU } mcq_format;

enum { MCQ_MAX_CHOICES = 8 };

typedef struct {
    char *id;       // PMID (PubMedQA), the record's id (MedMCQA), else "<file>:<line>"
    char *context;  // the prompt, ending in "Answer:"
    int n_choices;
    const char *choices[MCQ_MAX_CHOICES];  // static strings: "yes", "A"...; scored as " " + choice
    int gold;
} mcq_item;

typedef struct {
    mcq_item *items;
    size_t n, cap;
    size_t n_skipped;        // malformed records left out
    char first_skip[640];    // "<file>:<line or key>: <what is wrong>" of the first one
} mcq_set;

// "pubmedqa", "medqa", "medmcqa", "mmlu" -> format; -1 with an error listing them otherwise.
int mcq_format_from_name(const char *name, mcq_format *out);
const char *mcq_format_name(mcq_format f);
// Guesses the format of a dataset file from its shape: a directory or .csv is MMLU, a JSON
// object of objects PubMedQA, JSON lines with "opa" MedMCQA and with "options" MedQA.
int mcq_format_detect(const char *path, mcq_format *out);

// Reads the items of `path` (for MMLU a .csv or a directory of them, read in name order).
// limit > 0 keeps the first `limit` valid items of each file. gold_path (PubMedQA only, may be
// NULL) is a JSON object PMID -> "yes"|"no"|"maybe" such as test_ground_truth.json: only those
// PMIDs are kept, with that gold answer. Malformed records are skipped and counted; a file
// with no valid record is an error.
int mcq_set_read(mcq_set *s, const char *path, mcq_format f, size_t limit,
                 const char *gold_path);
void mcq_set_free(mcq_set *s);

// Prompt builders (the harness's doc_to_text). Each returns a malloc'd string or NULL when out
// of memory.
// "Abstract: c0\nc1...\nQuestion: q\nAnswer:"
char *mcq_prompt_pubmedqa(const char *question, const char *const *contexts, size_t n);
// head + question + mid + "A. o0\nB. o1\n..." + "Answer:"
char *mcq_prompt_lettered(const char *head, const char *question, const char *mid,
                          const char *const *options, int n);
// The byte length of `s` without its trailing whitespace, and the bytes of leading whitespace,
// as Python's str.rstrip() / str.lstrip() would remove them.
size_t py_rstrip_len(const char *s, size_t len);
size_t py_lstrip_skip(const char *s, size_t len);

typedef struct {
    int max_len;        // model inputs are at most this long (context cut from the left)
    int add_special;    // encode as HF add_special_tokens=True (BOS for Llama tokenizers)
    int progress;       // report progress on stderr
    int full_forward;   // score with lm_plan's full forward pass (all T x V logits), the
                        // reference the KV-cache path (the default) is tested against
} mcq_options;

typedef struct {
    double ll[MCQ_MAX_CHOICES];     // summed log-likelihood of each continuation
    int n_tokens[MCQ_MAX_CHOICES];  // continuation tokens
    int n_chars[MCQ_MAX_CHOICES];   // characters of the choice text (acc_norm's divisor)
    int chosen, chosen_norm;        // argmax of ll and of ll / n_chars (first on ties)
    int truncated;                  // context tokens dropped from the left to fit max_len
} mcq_result;

// Scores every item of `s` into out[s->n]. lora may be NULL.
int mcq_score(const model *m, const lora_adapter *lora, const tokenizer *tok, const mcq_set *s,
              const mcq_options *o, mcq_result *out);

typedef struct {
    size_t n, correct, correct_norm, truncated_items;
    double acc, acc_norm;
    double ci_lo, ci_hi, ci_norm_lo, ci_norm_hi;  // 95% Wilson score intervals
    double stderr_acc, stderr_norm;                // sample std / sqrt(n), as the harness reports
} mcq_summary;

void mcq_summarize(const mcq_set *s, const mcq_result *r, mcq_summary *sum);
// One JSON object per item: id, gold, chosen, chosen_norm, correct, correct_norm,
// loglikelihoods, choice_chars, continuation_tokens, truncated. Written atomically.
int mcq_results_write(const char *path, const mcq_set *s, const mcq_result *r);

#endif
