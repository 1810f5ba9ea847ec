// Benchmark suites: `medtune eval MODEL --suite SUITE.json` scores the tasks a suite file lists
// (the Open Medical-LLM Leaderboard's by default: configs/medical_suite.json), each a
// multiple-choice file read by mcq_readers.c, and reports them leaderboard style. With a second
// scorer (--compare ADAPTER) both score the same items and an exact McNemar test says, task by
// task and over all items, whether the accuracy changed. docs/eval.md describes the file.
#ifndef MEDTUNE_EVAL_SUITE_H
#define MEDTUNE_EVAL_SUITE_H

#include <stdio.h>

#include "eval/mcq.h"

typedef struct {
    size_t b, c;  // items only the first / only the second got right
    double p;     // exact two-sided McNemar p-value
} suite_mcnemar;

typedef struct {
    char *name, *path, *gold;  // gold: PubMedQA answer file, or NULL
    mcq_format format;
    long long limit;
    mcq_set set;
    mcq_result *res[2];   // [0] the model (with --adapter), [1] with the --compare adapter
    mcq_summary sum[2];
    suite_mcnemar mc, mc_norm;  // acc and acc_norm, when both were scored
} suite_task;

typedef struct {
    char *name;
    long long max_len;  // 0: the model's max_position_embeddings
    int add_special;
    suite_task *tasks;
    int n_tasks;
    int scored[2];             // which of res[0], res[1] are filled
    suite_mcnemar mc, mc_norm;  // over the items of every task
} eval_suite;

// Reads a suite file (JSON with comments, keys checked) and every task's items, so that a bad
// file fails before the model loads. Relative paths are taken from the current directory.
int suite_load(eval_suite *s, const char *path);
void suite_free(eval_suite *s);
// Scores every task into res[which]; lora may be NULL.
int suite_score(eval_suite *s, int which, const model *m, const lora_adapter *lora,
                const tokenizer *tok, const mcq_options *o);
// The McNemar tests of res[0] against res[1] (both scored).
void suite_compare(eval_suite *s);
// The macro average over tasks of acc and acc_norm of res[which], as the leaderboard averages.
void suite_average(const eval_suite *s, int which, double *acc, double *acc_norm);

typedef struct {
    const char *model, *adapter, *compare, *suite_path;
    int max_len;
    double seconds;
} suite_run_info;

// The leaderboard table (suite_report.c).
void suite_print(const eval_suite *s, FILE *f);
// results.json, results.csv and one <task>.jsonl (and <task>.compare.jsonl) of per-item results
// in dir, each written atomically.
int suite_write(const eval_suite *s, const suite_run_info *info, const char *dir);

#endif
